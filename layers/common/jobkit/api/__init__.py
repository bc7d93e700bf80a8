"""The runs API: its bodies and the URLs it answers with."""
