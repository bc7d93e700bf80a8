"""The local stack: MiniStack, the fake external system, and this template deployed on it.

Processes are started in their own sessions and stopped by process id (their whole process
group, which includes MiniStack's Lambda workers), never by name. Ports are picked free and
recorded in .jobkit/local.json.
"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx

from jobkit_cli.paths import project_root, state_dir
from jobkit_cli.stack import LocalState, Stack, load_local_state, local_state_path
from jobkit_cli.template import load_template

MINISTACK = Path(".jobkit/venvs/ministack/bin/ministack")
SAM = Path(".jobkit/venvs/sam/bin/sam")
REGION = "us-east-1"
STACK_NAME = "jobkit-local"


class LocalStackError(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _wait_http(url: str, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    tail = log.read_text()[-2000:] if log.exists() else ""
    raise LocalStackError(f"{what} did not answer at {url} within {timeout:.0f}s\n{tail}")


def _tool(relative: Path) -> Path:
    path = project_root() / relative
    if not path.exists():
        raise LocalStackError(f"{relative} is missing: run `make up` (it installs the tools)")
    return path


def _spawn(args: list[str], log: Path, env: dict[str, str] | None = None) -> int:
    with log.open("ab") as out:
        process = subprocess.Popen(  # noqa: S603 - our own tools, fixed arguments
            args,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=state_dir(),
            env=env,
            start_new_session=True,
        )
    return process.pid


def aws_env(endpoint_url: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AWS_ENDPOINT_URL=endpoint_url,
        AWS_ACCESS_KEY_ID="test",
        AWS_SECRET_ACCESS_KEY="test",
        AWS_DEFAULT_REGION=REGION,
        AWS_REGION=REGION,
        SAM_CLI_TELEMETRY="0",
    )
    return env


def start_processes() -> LocalState:
    """Start MiniStack and the external system, or reuse the ones already running."""
    state = load_local_state()
    if state and _alive(state.ministack_pid) and _alive(state.external_pid):
        return state
    if state:
        stop()
    logs = state_dir()
    ministack_port, external_port = free_port(), free_port()
    env = dict(
        os.environ,
        GATEWAY_PORT=str(ministack_port),
        MINISTACK_REGION=REGION,
        LAMBDA_EXECUTOR="local",
    )
    ministack_pid = _spawn([str(_tool(MINISTACK))], logs / "ministack.log", env)
    external_pid = _spawn(
        [
            sys.executable,
            "-m",
            "external_system",
            "--host",
            "127.0.0.1",
            "--port",
            str(external_port),
        ],
        logs / "external.log",
    )
    state = LocalState(
        endpoint_url=f"http://127.0.0.1:{ministack_port}",
        external_url=f"http://127.0.0.1:{external_port}",
        ministack_pid=ministack_pid,
        external_pid=external_pid,
        region=REGION,
        stack_name=STACK_NAME,
    )
    local_state_path().write_text(state.model_dump_json(indent=2))
    _wait_http(f"{state.endpoint_url}/_localstack/health", 60, "MiniStack", logs / "ministack.log")
    _wait_http(f"{state.external_url}/health", 30, "the external system", logs / "external.log")
    return state


def local_parameter_overrides(root: Path, external_url: str) -> str:
    """samconfig.toml's local overrides (one place for them), with the port the fake external
    system got today."""
    with (root / "samconfig.toml").open("rb") as file:
        config = tomllib.load(file)
    overrides = str(config["local"]["global"]["parameters"]["parameter_overrides"])
    return re.sub(r"ExternalBaseUrl=\S+", f"ExternalBaseUrl={external_url}", overrides)


def deploy(
    state: LocalState,
    root: Path | None = None,
    stack_name: str = STACK_NAME,
    overrides: dict[str, str] | None = None,
) -> None:
    """sam build + sam deploy --config-env local: the same deploy as to AWS. ``overrides``
    replace samconfig's local parameters (a second stack beside the first, say)."""
    root = root or project_root()
    sam = str(_tool(SAM))
    env = aws_env(state.endpoint_url)
    # sam build needs python3.13 on PATH: ours is the project venv's interpreter.
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    parameters = local_parameter_overrides(root, state.external_url)
    for name, value in (overrides or {}).items():
        parameters = re.sub(rf"(^| ){name}=\S+", "", parameters).strip() + f" {name}={value}"
    log = state_dir() / "sam.log"
    steps = [
        [sam, "build", "--config-env", "local", "--parameter-overrides", parameters],
        [
            sam,
            "deploy",
            "--config-env",
            "local",
            "--no-progressbar",
            "--stack-name",
            stack_name,
            "--parameter-overrides",
            parameters,
        ],
    ]
    with log.open("ab") as out:
        for step in steps:
            result = subprocess.run(  # noqa: S603
                step, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT, check=False
            )
            if result.returncode != 0:
                tail = log.read_text()[-3000:]
                raise LocalStackError(f"`sam {step[1]}` failed (see .jobkit/sam.log):\n{tail}")
    apply_gateway_responses(state, root, stack_name)


def apply_gateway_responses(state: LocalState, root: Path, stack_name: str) -> None:
    """The API's gateway responses, put as AWS puts them.

    SAM writes the template's ``GatewayResponses`` into the API's OpenAPI body, and AWS
    applies them with each deployment. MiniStack ignores them in an imported body, so
    API Gateway's own 401/403/429 would answer its default body here: they are put through
    the API Gateway API and the stage deployed again, as AWS would have deployed them.
    """
    api = load_template(root)["Resources"]["Api"]["Properties"]
    stack = Stack(stack_name, REGION, state.endpoint_url, state.external_url)
    apigateway = stack.client("apigateway")
    rest_api_id = stack.client("cloudformation").describe_stack_resource(
        StackName=stack_name, LogicalResourceId="Api"
    )["StackResourceDetail"]["PhysicalResourceId"]
    for response_type, response in api.get("GatewayResponses", {}).items():
        status = {"statusCode": str(response["StatusCode"])} if "StatusCode" in response else {}
        apigateway.put_gateway_response(
            restApiId=rest_api_id,
            responseType=response_type,
            responseTemplates=response.get("ResponseTemplates", {}),
            **status,
        )
    apigateway.create_deployment(restApiId=rest_api_id, stageName=api["StageName"])


def up() -> LocalState:
    state = start_processes()
    deploy(state)
    return state


def stop() -> None:
    """Stop what `up` started, by process group id, and forget it."""
    state = load_local_state()
    if state is None:
        return
    for pid in (state.external_pid, state.ministack_pid):
        _terminate_group(pid)
    local_state_path().unlink(missing_ok=True)
    shutil.rmtree(project_root() / ".aws-sam" / "deps", ignore_errors=True)


def _terminate_group(pid: int) -> None:
    try:
        pgid = os.getpgid(pid)
    except ProcessLookupError:
        return
    if pgid != pid:
        return  # not a group we started: never signal someone else's processes
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
    if _alive(pid):
        os.killpg(pgid, signal.SIGKILL)
