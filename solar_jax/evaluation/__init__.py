"""The --mode=evaluate driver: feature extractors, floors, tables and plots."""
