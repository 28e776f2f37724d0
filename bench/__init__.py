"""Benchmarks for Billing Desk (`make bench`)."""
