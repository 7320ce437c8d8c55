"""`acibatch.outbound`: tenant-aimed URLs reach public hosts only, checked statically and again on the resolved
address; redirects, slow or huge answers and internal spellings in every form are refused, over real sockets."""

from __future__ import annotations

import datetime
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from acibatch.outbound import (
    AddressKind,
    OutboundFailed,
    OutboundPolicy,
    OutboundRefused,
    address_kind,
    check_url,
    parse_allow_list,
    parse_ipv4_spelling,
    resolve,
)
from acibatch.outbound_post import MAX_RESPONSE_BYTES, Timeouts, post
from acibatch.settings import Settings, SettingsError
from acibatch.spec import JobSpecInvalid, parse_job_spec
from tests.httpserve import serving_on_a_thread

# Every way a tenant might spell an internal destination. The host part is what matters: the policy used for
# this table allows http, so each is refused for its host, not its scheme.
INTERNAL_URLS = [
    # Azure platform endpoints: IMDS (and its managed identity tokens) and the wire server, in several spellings.
    "http://169.254.169.254/metadata/instance?api-version=2021-02-01",
    "http://169.254.169.254/metadata/identity/oauth2/token?resource=https://management.azure.com/",
    "http://2852039166/metadata/instance",  # 169.254.169.254 as one decimal number
    "http://0xa9.0xfe.0xa9.0xfe/metadata/instance",
    "http://0251.0376.0251.0376/metadata/instance",
    "http://169.254.43518/metadata/instance",
    "http://[::ffff:169.254.169.254]/metadata/instance",
    "http://[64:ff9b::a9fe:a9fe]/metadata/instance",
    "http://168.63.129.16/machine?comp=goalstate",
    "http://168.63.129.16:32526/vmSettings",
    # This machine: devhost's Durable HTTP API is the attack the issue reproduced.
    "http://127.0.0.1:7071/runtime/webhooks/durabletask/instances/job:b:x/terminate?reason=x",
    "http://127.0.0.2/",
    "http://localhost:7071/",
    "http://LOCALHOST./",
    "http://api.localhost/",
    "http://localhost.localdomain/",
    "http://2130706433/",
    "http://017700000001/",
    "http://0x7f000001/",
    "http://0x7f.1/",
    "http://0177.0.0.1/",
    "http://127.1/",
    "http://127.000.000.001/",
    "http://127.0.0.1./",
    "http://\uff11\uff12\uff17\u3002\uff10\u3002\uff10\u3002\uff11/",  # full-width digits, ideographic dots
    "http://[::1]/",
    "http://[0:0:0:0:0:0:0:1]:7071/",
    "http://[::ffff:127.0.0.1]:7071/",
    "http://[::ffff:7f00:1]/",
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[64:ff9b::127.0.0.1]/",  # NAT64 well-known prefix
    "http://[64:ff9b:1::7f00:1]/",  # NAT64 local-use prefix
    "http://[2002:7f00:1::1]/",  # 6to4 around 127.0.0.1
    "http://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",  # Teredo
    "http://0.0.0.0:7071/",
    "http://0/",
    "http://[::]/",
    # Private networks (a VNet-integrated app reaches them).
    "http://10.0.0.1/",
    "http://10.255.255.255:8080/",
    "http://172.16.5.4/",
    "http://172.31.255.1/",
    "http://192.168.1.1/",
    "http://100.64.0.1/",  # carrier-grade NAT
    "http://[fc00::1]/",
    "http://[fd12:3456:789a::1]/",
    "http://[fe80::1]/",
    "http://[fec0::1]/",
    "http://169.254.1.1/",
    # Multicast, broadcast, reserved and documentation ranges.
    "http://224.0.0.1/",
    "http://239.255.255.250:1900/",
    "http://[ff02::1]/",
    "http://255.255.255.255/",
    "http://240.0.0.1/",
    "http://198.18.0.1/",
    "http://192.0.0.170/",
    "http://192.0.2.1/",
    "http://[2001:db8::1]/",
    "http://[3fff::1]/",
    "http://[100::1]/",
]

# Refused whatever the allow-list says: nothing a tenant should reach lives there.
NEVER_ALLOWED = ["http://169.254.169.254/metadata/instance", "http://168.63.129.16/", "http://[::ffff:a9fe:a9fe]/"]

# The issue's own list, under the default policy (https only): refused for the scheme or the host.
ISSUE_URLS = [
    "http://169.254.169.254/metadata/instance",
    "http://127.0.0.1:7071/",
    "http://localhost/",
    "http://[::1]/",
    "http://10.0.0.1/",
    "http://168.63.129.16/",
    "http://2130706433/",
    "https://169.254.169.254/metadata/instance",
    "https://127.0.0.1:7071/",
    "https://localhost/",
    "https://[::1]/",
    "https://10.0.0.1/",
    "https://168.63.129.16/",
    "https://2130706433/",
]

PUBLIC_URLS = [
    "https://hooks.example.com/acibatch",
    "https://hooks.example.com:8443/acibatch?sig=abc#frag",
    "https://8.8.8.8/hook",
    "https://[2606:4700:4700::1111]/hook",
    "https://[::ffff:8.8.8.8]/hook",
    "https://[64:ff9b::8.8.8.8]/hook",
    "https://b\u00fccher.example/hook",
    "https://xn--bcher-kva.example/hook",
    "https://EXAMPLE.com./hook",
]

MALFORMED = {
    "ftp://hooks.example.com/x": "https URL",
    "https://user:secret@hooks.example.com/": "user name or password",
    "https://hooks.example.com:0/": "port",
    "https://hooks.example.com:99999/": "port",
    "https:///path-only": "must name a host",
    "https://hooks.example.com/a b": "spaces",
    "https://hooks.example.com/caf\u00e9": "percent-encode non-ASCII",
    "https://hooks.example.com\\@127.0.0.1/": "backslashes",
    "https://1.2.3.4.5/": "not an IPv4 address",
    "https://999.1.1.1/": "out of range",
    "https://0189.0.0.1/": "octal",
    "https://[fe80::1%25eth0]/": "zone id",
    "https://under_score-.-bad/": "invalid host name",
    "https://" + "a" * 2100 + ".example/": "at most 2048",
}

HTTP_OK = OutboundPolicy(allow_http=True)


@pytest.mark.parametrize("url", INTERNAL_URLS)
def test_internal_urls_are_refused_before_any_lookup(url: str) -> None:
    with pytest.raises(OutboundRefused, match="which tenants may not reach"):
        check_url(url, HTTP_OK)


@pytest.mark.parametrize("url", ISSUE_URLS)
def test_the_issue_urls_are_refused_under_the_default_policy(url: str) -> None:
    with pytest.raises(OutboundRefused):
        check_url(url, OutboundPolicy())


@pytest.mark.parametrize("url", PUBLIC_URLS)
def test_public_https_urls_pass_the_static_check(url: str) -> None:
    target = check_url(url, OutboundPolicy())
    assert target.scheme == "https" and target.host.isascii()


@pytest.mark.parametrize(("url", "says"), MALFORMED.items())
def test_malformed_urls_are_refused_with_what_to_fix(url: str, says: str) -> None:
    with pytest.raises(OutboundRefused, match=says):
        check_url(url, OutboundPolicy())


def test_messages_name_the_address_an_odd_spelling_stands_for_and_never_the_path() -> None:
    with pytest.raises(OutboundRefused) as caught:
        check_url("https://0xa9.0xfe.0xa9.0xfe/metadata/identity/oauth2/token?secret=1", OutboundPolicy())
    message = str(caught.value)
    assert "0xa9.0xfe.0xa9.0xfe is 169.254.169.254" in message and "Instance Metadata" in message
    assert "oauth2" not in message and "secret" not in message


@pytest.mark.parametrize(
    "host",
    ["2130706433", "017700000001", "0x7f000001", "0x7f.1", "0177.0.0.1", "127.1", "127.000.000.001", "2852039166",
     "0xa9.0xfe.0xa9.0xfe", "0251.0376.0251.0376", "169.254.43518", "10.1", "0", "0x0a.0x00.0x00.0x01"],
)  # fmt: skip
def test_ipv4_spellings_parse_to_what_the_system_resolver_connects_to(host: str) -> None:
    resolved = {info[4][0] for info in socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)}
    assert resolved == {str(parse_ipv4_spelling(host))}


@pytest.mark.parametrize(
    ("address", "kind"),
    [("127.0.0.1", AddressKind.LOOPBACK), ("169.254.169.254", AddressKind.IMDS), ("::ffff:a9fe:a9fe", AddressKind.IMDS),
     ("168.63.129.16", AddressKind.WIRE_SERVER), ("100.100.100.100", AddressKind.SHARED),
     ("fd00::1", AddressKind.UNIQUE_LOCAL), ("::ffff:10.1.2.3", AddressKind.PRIVATE), ("8.8.8.8", None),
     ("2606:4700:4700::1111", None), ("3fff::1", AddressKind.DOCUMENTATION), ("4000::1", AddressKind.RESERVED)],
)  # fmt: skip
def test_address_kinds(address: str, kind: AddressKind | None) -> None:
    assert address_kind(ipaddress.ip_address(address))[0] == kind


def test_the_allow_list_names_exceptions_but_never_the_platform_endpoints() -> None:
    policy = OutboundPolicy(
        allow_http=True, allow=parse_allow_list("127.0.0.1:8099, 10.1.0.0/16 [fd00::5]:443 hooks.corp.internal")
    )
    assert check_url("http://127.0.0.1:8099/hook", policy).port == 8099
    assert check_url("http://[::ffff:127.0.0.1]:8099/hook", policy).port == 8099  # the same destination
    assert check_url("http://10.1.200.3:1234/", policy).host == "10.1.200.3"
    assert check_url("https://[fd00::5]/", policy).port == 443
    for refused in ("http://127.0.0.1:7071/", "http://127.0.0.1/", "http://10.2.0.1/", "https://[fd00::5]:444/"):
        with pytest.raises(OutboundRefused):
            check_url(refused, policy)
    everything = OutboundPolicy(allow_http=True, allow=parse_allow_list("0.0.0.0/0 ::/0"))
    for url in NEVER_ALLOWED:
        with pytest.raises(OutboundRefused, match="Azure"):
            check_url(url, everything)


@pytest.mark.parametrize("entry", ["127.0.0.1:0", "127.0.0.1:http", "10.0.0.0/33", "bad host!", "127.1", "[::1"])
def test_bad_allow_list_entries_are_named(entry: str) -> None:
    with pytest.raises(ValueError, match="is not a CIDR"):
        parse_allow_list(f"127.0.0.1:8099,{entry}")


def test_settings_parse_the_outbound_policy_and_name_bad_values() -> None:
    valid = {
        "ACI_SUBSCRIPTION_ID": "s", "ACI_RESOURCE_GROUP": "rg", "ACI_LOCATION": "westeurope",
        "BATCH_ADMIN_KEY": "a", "BATCH_CALLBACK_SIGNING_KEY": "k" * 32, "BATCH_CALLBACK_BASE_URL": "https://x.example",
    }  # fmt: skip
    assert Settings.from_env(valid).outbound == OutboundPolicy()
    local = Settings.from_env({**valid, "BATCH_OUTBOUND_ALLOW_HTTP": "true", "BATCH_OUTBOUND_ALLOW": "127.0.0.1:9"})
    assert local.outbound == OutboundPolicy(allow_http=True, allow=parse_allow_list("127.0.0.1:9"))
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({**valid, "BATCH_OUTBOUND_ALLOW_HTTP": "yes", "BATCH_OUTBOUND_ALLOW": "127.0.0.1:x"})
    assert "BATCH_OUTBOUND_ALLOW_HTTP='yes' is invalid" in str(caught.value)
    assert "BATCH_OUTBOUND_ALLOW is invalid: '127.0.0.1:x'" in str(caught.value)


def test_a_job_spec_with_an_internal_notify_url_is_refused_at_submit_with_the_reason() -> None:
    base = {"image": "myregistry.azurecr.io/team/worker:1", "taskCount": 1}
    for url in ("http://169.254.169.254/metadata/instance", "https://2130706433/", "https://localhost:7071/x"):
        with pytest.raises(JobSpecInvalid) as caught:
            parse_job_spec({**base, "notifyUrl": url})
        [error] = caught.value.errors
        assert error.path == "notifyUrl" and ("https" in error.message or "may not reach" in error.message)
    local = OutboundPolicy(allow_http=True, allow=parse_allow_list("127.0.0.1:8099"))
    assert parse_job_spec({**base, "notifyUrl": "http://127.0.0.1:8099/h"}, outbound=local).notify_url
    with pytest.raises(JobSpecInvalid, match="loopback"):
        parse_job_spec({**base, "notifyUrl": "http://127.0.0.1:7071/runtime/webhooks/durabletask"}, outbound=local)


# --- At send time, over real sockets on 127.0.0.1 ---------------------------------------------------------------


@dataclass
class Seen:
    method: str
    path: str
    host: str
    body: bytes


@dataclass
class Receiver:
    server: ThreadingHTTPServer
    seen: list[Seen] = field(default_factory=list)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])


@contextmanager
def receiver(answer: int = 200, headers: dict[str, str] | None = None, body: bytes = b"ok") -> Iterator[Receiver]:
    """A real HTTP server on 127.0.0.1 that records every request and answers `answer`."""
    record = Receiver(ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler))

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            sent = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            record.seen.append(Seen(self.command, self.path, self.headers.get("Host", ""), sent))
            self.send_response(answer)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST

        def log_message(self, *args: object) -> None:
            pass

    record.server.RequestHandlerClass = Handler
    with serving_on_a_thread(record.server):
        yield record


@pytest.fixture
def internal() -> Iterator[Receiver]:
    """Stands for devhost: an internal service on loopback that no tenant URL may reach."""
    with receiver() as running:
        yield running


@pytest.fixture
def allowed() -> Iterator[Receiver]:
    with receiver() as running:
        yield running


def local_policy(*receivers: Receiver) -> OutboundPolicy:
    return OutboundPolicy(allow_http=True, allow=parse_allow_list(",".join(f"127.0.0.1:{r.port}" for r in receivers)))


def test_every_spelling_of_loopback_at_the_internal_port_is_refused_and_nothing_is_sent(
    internal: Receiver, allowed: Receiver
) -> None:
    policy = local_policy(allowed)  # the allow-list names another port on the same address
    port = internal.port
    own_name = socket.gethostname()  # this machine's name: no static check can know where it points
    urls = [
        f"http://127.0.0.1:{port}/terminate", f"http://2130706433:{port}/", f"http://0x7f.1:{port}/",
        f"http://0177.0.0.1:{port}/", f"http://127.1:{port}/", f"http://[::ffff:127.0.0.1]:{port}/",
        f"http://localhost:{port}/", f"http://{own_name}:{port}/", f"http://0.0.0.0:{port}/", f"http://0:{port}/",
    ]  # fmt: skip
    refused = []
    for url in urls:
        with pytest.raises(OutboundRefused) as caught:
            post(url, b"{}", {"Content-Type": "application/json"}, policy)
        refused.append(str(caught.value))
    assert internal.seen == []
    if any(ipaddress.ip_address(a).is_loopback for a in _resolve_all(own_name)):
        assert f"host {own_name.lower()} resolves to 127." in refused[urls.index(f"http://{own_name}:{port}/")]


def _resolve_all(host: str) -> set[str]:
    return {str(info[4][0]) for info in socket.getaddrinfo(host, 80, type=socket.SOCK_STREAM)}


def test_a_host_name_is_refused_when_any_address_it_resolves_to_is_internal() -> None:
    target = check_url("http://localhost:1/", OutboundPolicy(allow_http=True, allow=parse_allow_list("localhost:1")))
    assert resolve(target, OutboundPolicy(allow_http=True, allow=parse_allow_list("localhost:1")))
    with pytest.raises(OutboundRefused, match=re.escape("resolves to 127.0.0.1, a loopback address")):
        resolve(target, OutboundPolicy(allow_http=True))


def test_an_allowed_receiver_gets_the_post_with_its_host_header(allowed: Receiver) -> None:
    response = post(f"http://127.0.0.1:{allowed.port}/hook?x=1", b'{"a":1}', {"X-Test": "1"}, local_policy(allowed))
    assert response.status == 200 and response.body == b"ok"
    assert allowed.seen == [Seen("POST", "/hook?x=1", f"127.0.0.1:{allowed.port}", b'{"a":1}')]


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_from_an_allowed_server_to_an_internal_one_is_refused_and_not_followed(
    status: int, internal: Receiver
) -> None:
    where = f"http://127.0.0.1:{internal.port}/runtime/webhooks/durabletask/instances/x/terminate?reason=pwn"
    with receiver(status, {"Location": where}) as redirector:
        with pytest.raises(OutboundRefused) as caught:
            post(f"http://127.0.0.1:{redirector.port}/hook", b"{}", {}, local_policy(redirector, internal))
        assert len(redirector.seen) == 1
    assert internal.seen == []  # even though the allow-list names it: redirects are never followed
    assert f"HTTP {status}" in str(caught.value) and "redirects are not followed" in str(caught.value)
    assert "terminate" not in str(caught.value) and "pwn" not in str(caught.value)


def test_error_answers_are_returned_for_the_caller_to_judge() -> None:
    with receiver(500, body=b"boom") as failing:
        assert post(f"http://127.0.0.1:{failing.port}/", b"{}", {}, local_policy(failing)).status == 500


def test_at_most_the_response_cap_is_read_from_a_huge_answer() -> None:
    with receiver(200, body=b"x" * (8 * 1024 * 1024)) as huge:
        started = time.monotonic()
        response = post(f"http://127.0.0.1:{huge.port}/", b"{}", {}, local_policy(huge))
        assert len(response.body) == MAX_RESPONSE_BYTES and time.monotonic() - started < 5


def test_a_dripping_answer_is_cut_at_the_total_deadline() -> None:
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def drip() -> None:
        connection, _ = listener.accept()
        with connection:
            connection.recv(65536)
            connection.sendall(b"HTTP/1.1 200 OK\r\n")
            while not stop.wait(0.2):  # one header byte at a time, well inside the per-read timeout
                try:
                    connection.sendall(b"X")
                except OSError:
                    return

    thread = threading.Thread(target=drip, daemon=True)
    thread.start()
    port = listener.getsockname()[1]
    policy = OutboundPolicy(allow_http=True, allow=parse_allow_list(f"127.0.0.1:{port}"))
    started = time.monotonic()
    try:
        with pytest.raises(OutboundFailed, match="did not answer within 1 s in total"):
            post(f"http://127.0.0.1:{port}/", b"{}", {}, policy, timeouts=Timeouts(connect=1, read=5, total=1))
        assert time.monotonic() - started < 3
    finally:
        stop.set()
        listener.close()


def test_an_unreachable_allowed_port_fails_without_a_refusal() -> None:
    with socket.create_server(("127.0.0.1", 0)) as placeholder:
        port = placeholder.getsockname()[1]
    policy = OutboundPolicy(allow_http=True, allow=parse_allow_list(f"127.0.0.1:{port}"))
    with pytest.raises(OutboundFailed, match="could not connect"):
        post(f"http://127.0.0.1:{port}/", b"{}", {}, policy)


# --- https: the checked address is dialled, while SNI, certificate and Host name the URL's host ------------------


def _certificate(tmp_path: Path, name: str) -> tuple[Path, Path, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(name)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(pem)
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path, pem.decode()


def test_https_dials_the_checked_address_and_keeps_sni_certificate_and_host(tmp_path: Path) -> None:
    cert_path, key_path, pem = _certificate(tmp_path, "localhost")
    server_names: list[str | None] = []
    tls_server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls_server.load_cert_chain(cert_path, key_path)

    def record_sni(_sock: ssl.SSLObject, name: str | None, _context: ssl.SSLContext) -> None:
        server_names.append(name)

    tls_server.sni_callback = record_sni
    trust = ssl.create_default_context(cadata=pem)
    with receiver() as tls_receiver:
        tls_receiver.server.socket = tls_server.wrap_socket(tls_receiver.server.socket, server_side=True)
        port = tls_receiver.port
        # The operator's exception names the host: localhost resolves to loopback, which is otherwise refused.
        policy = OutboundPolicy(allow=parse_allow_list(f"localhost:{port}"))
        assert post(f"https://localhost:{port}/hook", b"{}", {}, policy, tls=trust).status == 200
        assert tls_receiver.seen[0].host == f"localhost:{port}" and server_names[-1] == "localhost"
        # The same server reached by address: the certificate names localhost, not 127.0.0.1, so TLS fails.
        by_address = OutboundPolicy(allow=parse_allow_list(f"127.0.0.1:{port}"))
        with pytest.raises(OutboundFailed, match="TLS"):
            post(f"https://127.0.0.1:{port}/hook", b"{}", {}, by_address, tls=trust)
        assert len(tls_receiver.seen) == 1
