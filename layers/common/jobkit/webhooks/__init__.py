"""Webhooks: subscriptions, signing, matching and delivery."""
