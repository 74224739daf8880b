"""DNS rebinding: a web page that points its own name at 127.0.0.1 must not read the app. A real ``streamlit run``
(started as a user would, without the Makefile's address flag) on a free loopback port, and a raw websocket client
that sends the Host and Origin such a page would send (issue 16)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.app_server import AppDidNotStart, free_port, running_app

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def app_port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    home = tmp_path_factory.mktemp("rebinding-home")
    port = free_port()
    # No --server.address: the project's config must bind loopback by itself. The file watcher stays as a user has it.
    try:
        with running_app(home, port=port, user=None, bind_loopback=False, watch_files=True):
            yield port
    except AppDidNotStart as exc:
        pytest.fail(str(exc))


def _listening_addresses(port: int) -> set[str]:
    """The local addresses with a socket listening on ``port`` (from /proc/net/tcp and tcp6, in hex)."""
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, hex_port = local.split(":")
            if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.add(address)
    return found


def _stream(port: int, host: str, origin: str | None):
    """Open the app's websocket on 127.0.0.1 while saying ``Host: host`` (as a rebinding page's browser would)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    return connect(f"ws://{host}/_stcore/stream", sock=sock, origin=origin, open_timeout=10)


def test_the_app_listens_on_loopback_only(app_port):
    assert _listening_addresses(app_port) == {"0100007F"}  # 127.0.0.1, and no 0.0.0.0 / :: listener


@pytest.mark.parametrize("name", ["localhost", "127.0.0.1"])
def test_the_websocket_opens_for_localhost_and_127_0_0_1(app_port, name):
    host = f"{name}:{app_port}"
    with _stream(app_port, host, f"http://{host}") as websocket:
        websocket.ping().wait(5)  # the server answers on an open stream


@pytest.mark.parametrize(
    "host,origin",
    [
        ("rebind.example:{port}", "http://rebind.example:{port}"),  # a page whose name now resolves to 127.0.0.1
        ("rebind.example:{port}", None),
        ("127.0.0.1.rebind.example:{port}", "http://127.0.0.1.rebind.example:{port}"),
        ("localhost.rebind.example:{port}", "http://localhost.rebind.example:{port}"),
    ],
)
def test_a_foreign_host_is_refused_before_the_stream_opens(app_port, host, origin):
    host = host.format(port=app_port)
    with pytest.raises(InvalidStatus) as refused:
        _stream(app_port, host, origin.format(port=app_port) if origin else None)
    assert refused.value.response.status_code == 403


def test_a_foreign_origin_is_refused_even_with_a_local_host(app_port):
    with pytest.raises(InvalidStatus):
        _stream(app_port, f"127.0.0.1:{app_port}", "http://attacker.example")
