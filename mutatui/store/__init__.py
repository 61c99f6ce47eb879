"""The store: the one place that speaks SQL (DuckDB). No UI."""
