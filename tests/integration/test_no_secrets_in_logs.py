"""At the session's finish (``at_finish``, after every other test): no key issued during the
suite appears in any log the stack wrote."""

from collections.abc import Iterator

import pytest

from jobkit.adapters.credentials import ExternalCredential
from jobkit.adapters.keys import parse_key
from jobkit_cli.paths import state_dir
from jobkit_cli.stack import Stack
from tests.integration.conftest import log_messages

pytestmark = [pytest.mark.integration, pytest.mark.at_finish]


def _cloudwatch_messages(stack: Stack) -> Iterator[str]:
    logs = stack.client("logs")
    for page in logs.get_paginator("describe_log_groups").paginate(logGroupNamePrefix="/aws/"):
        for group in page["logGroups"]:
            yield from log_messages(logs, group["logGroupName"])


def test_no_issued_key_appears_in_any_log(stack: Stack, issued_keys: list[str]) -> None:
    if not issued_keys:
        pytest.skip("no key was issued in this session (run the whole integration suite)")
    secrets = [parsed.secret for key in issued_keys if (parsed := parse_key(key))]
    assert len(secrets) == len(issued_keys)
    texts = [path.read_text(errors="replace") for path in state_dir().glob("*.log")]
    texts.append("\n".join(_cloudwatch_messages(stack)))
    assert sum(len(text) for text in texts) > 0
    leaked = sum(1 for secret in secrets for text in texts if secret in text)
    assert leaked == 0, f"{leaked} key(s) found in logs"  # the count only, never the key


def _external_tokens(stack: Stack) -> list[str]:
    """Every version of every client credential on the stack (rotated ones included)."""
    client = stack.client("secretsmanager")
    prefix = stack.outputs["CredentialsSecretPrefix"] + "/"
    tokens = []
    for page in client.get_paginator("list_secrets").paginate():
        for secret in page["SecretList"]:
            if not secret["Name"].startswith(prefix):
                continue
            versions = client.list_secret_version_ids(SecretId=secret["ARN"])["Versions"]
            for version in versions:
                raw = client.get_secret_value(
                    SecretId=secret["ARN"], VersionId=version["VersionId"]
                )["SecretString"]
                tokens.append(ExternalCredential.model_validate_json(raw).token)
    return tokens


def test_no_external_credential_appears_in_any_log(stack: Stack) -> None:
    tokens = _external_tokens(stack)
    if not tokens:
        pytest.skip("no client credential was stored in this session")
    texts = [path.read_text(errors="replace") for path in state_dir().glob("*.log")]
    texts.append("\n".join(_cloudwatch_messages(stack)))
    leaked = sum(1 for token in tokens for text in texts if token in text)
    assert leaked == 0, f"{leaked} credential(s) found in logs"  # the count only
