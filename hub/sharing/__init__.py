"""Data sharing (数据共享): catalog, applications, grants and governed access."""
