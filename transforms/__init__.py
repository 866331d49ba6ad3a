"""The declarative mapping language (field maps, code tables, dates, XML↔JSON). Not built yet
(the onboarding issue); today a route target names a transform *function* registered by a
plugin through ``hub_register_transform_functions`` (built in: ``identity``, ``drop_empty``)."""
