"""Real peers (Dovecot) and stand-ins (a deduplicating ingest) for tests."""
