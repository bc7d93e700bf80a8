"""The API's routes, one Powertools router per resource."""
