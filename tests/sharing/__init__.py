"""Tests of data sharing (数据共享): filter language, enforcement, export, quotas."""
