"""Retention: every window of DESIGN §7 enforced by one scheduled, resumable run."""
