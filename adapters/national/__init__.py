"""National 互联网+监管 system connector. Not built yet: see the national-connector issue."""
