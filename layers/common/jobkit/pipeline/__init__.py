"""The steps a record meets, in order: plan, process (route, fetch, apply, settle), retry."""
