"""Local-stack and test tooling, never active on AWS: fault injection (chaos) and the IAM notes the
local stack checks."""
