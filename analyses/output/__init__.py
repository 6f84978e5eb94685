"""Rendering of stored results into files people read: pages and reports (no computation)."""
