"""AWS and the external system behind small interfaces: DynamoDB stores, SQS, EventBridge, HTTP,
rate limit, circuits, credentials."""
