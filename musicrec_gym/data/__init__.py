"""Listening logs: the synthetic world's generator and its logged sessions."""
