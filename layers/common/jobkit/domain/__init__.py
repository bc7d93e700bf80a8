"""What travels and what it means: work envelopes, the job contract, typed errors, backoff."""
