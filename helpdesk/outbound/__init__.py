"""Outgoing mail: composition, the transactional outbox, automatic mail and delivery."""
