"""The only module that opens connections to a cluster.

:func:`connect` builds a :class:`Client` over opensearch-py (basic auth, TLS, SigV4 for Amazon
OpenSearch Service). :meth:`Client.request` is the single choke point: it logs method, path,
status and milliseconds, and maps every opensearch-py exception to :mod:`kit.errors`, keeping the
server's ``root_cause`` reason.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from typing import Any
from urllib.parse import unquote, urlparse, urlunparse

from kit.errors import AuthError, ClusterError, Conflict, NotFound, Unreachable

log = logging.getLogger("kit.cluster")

__all__ = ["Client", "connect", "map_error", "redact_url", "split_credentials"]


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """``http://user:pw@host:9200`` → (``http://host:9200``, user, pw): credentials never travel in a URL
    the kit prints, logs or writes into a plan."""
    parsed = urlparse(url)
    if parsed.username is None and parsed.password is None:
        return url, None, None
    host = parsed.hostname or ""
    if ":" in host:  # IPv6 literal
        host = f"[{host}]"
    netloc = host + (f":{parsed.port}" if parsed.port is not None else "")
    clean = urlunparse(parsed._replace(netloc=netloc))
    user = unquote(parsed.username) if parsed.username is not None else None
    password = unquote(parsed.password) if parsed.password is not None else None
    return clean, user, password


def redact_url(url: str) -> str:
    """The URL without its credentials (safe for output, logs and errors)."""
    try:
        return split_credentials(url)[0]
    except ValueError:  # an unparsable port: show nothing after the scheme's userinfo
        return re.sub(r"//[^/@]*@", "//", url)


def _root_cause(info: Any) -> tuple[str | None, str | None]:
    """(type, reason) of the first root cause in an OpenSearch error body."""
    if isinstance(info, dict):
        err = info.get("error", info)
        if isinstance(err, dict):
            causes = err.get("root_cause") or []
            first = causes[0] if causes and isinstance(causes[0], dict) else err
            return first.get("type") or err.get("type"), first.get("reason") or err.get("reason")
        if isinstance(err, str):
            return None, err
    if isinstance(info, str) and info:
        return None, info
    return None, None


# What OpenSSL says when the other side answers a TLS hello in plain HTTP.
_PLAIN_HTTP = ("wrong version number", "wrong_version_number", "record layer failure", "unknown protocol",
               "packet length too long", "http request")


def _at(url: str | None) -> str:
    return f" at {redact_url(url)}" if url else ""


def map_error(exc: Exception, method: str, path: str, url: str | None = None,
              user: str | None = None) -> ClusterError:
    """Translate an opensearch-py exception into the kit's tree (a test checks every class is mapped).

    ``url`` (the cluster's, printed without credentials) names what a connection error tried to reach.
    """
    from opensearchpy import exceptions as ose

    if isinstance(exc, (ose.ConnectionTimeout,)):
        return Unreachable(f"request to the cluster{_at(url)} timed out", method=method, path=path,
                           hint="raise --timeout, or check that the cluster is up")
    if isinstance(exc, ose.SSLError):
        text = str(getattr(exc, "info", None) or exc)
        if any(marker in text.lower() for marker in _PLAIN_HTTP):
            plain = redact_url(url).replace("https://", "http://", 1) if url else "http://…"
            return Unreachable(f"the cluster{_at(url)} does not speak TLS: https:// was used against a plain-HTTP "
                               "endpoint", method=method, path=path, hint=f"use --url {plain}")
        return Unreachable(f"TLS error{_at(url)}: {text}", method=method, path=path,
                           hint="pass --ca-certs with the cluster's CA bundle, or --insecure for a test cluster")
    if isinstance(exc, ose.ConnectionError):
        cause = _connection_cause(exc)
        return Unreachable(f"cannot connect to the cluster{_at(url)}{f' ({cause})' if cause else ''}",
                           method=method, path=path,
                           hint="check --url / OPENSEARCH_URL; for the embedded node run `oskit node start`")
    if isinstance(exc, ose.TransportError):
        status = exc.status_code if isinstance(exc.status_code, int) else None
        etype, reason = _root_cause(exc.info)
        kw: dict[str, Any] = dict(method=method, path=path, status=status, error_type=etype, reason=reason,
                                  body=exc.info)
        if status in (401, 403):
            who = f" for user {user!r}" if user else (" (no credentials were sent)" if status == 401 else "")
            return AuthError(f"the cluster{_at(url)} refused the request{who}",
                             hint="check OPENSEARCH_USER / OPENSEARCH_PASSWORD or the IAM role", **kw)
        if status == 404:
            return NotFound("not found", **kw)
        if status == 409:
            return Conflict("conflict", **kw)
        return ClusterError("the cluster answered with an error", **kw)
    if isinstance(exc, ose.ImproperlyConfigured):
        return ClusterError(f"client misconfigured: {exc}", method=method, path=path)
    if isinstance(exc, ose.SerializationError):
        return ClusterError(f"could not (de)serialize: {exc}", method=method, path=path)
    if isinstance(exc, ose.OpenSearchException):
        return ClusterError(f"client error: {exc}", method=method, path=path)
    raise exc


def _connection_cause(exc: Exception) -> str:
    """The OS's reason (``[Errno 111] Connection refused``, name resolution …) from urllib3's wrapping."""
    text = str(getattr(exc, "info", "") or "")
    m = re.search(r"\[Errno -?\d+\][^'\")\]]*", text)
    if m:
        return m.group(0).strip().rstrip(".")
    for marker in ("Name or service not known", "Connection refused", "Connection reset", "No route to host"):
        if marker in text:
            return marker
    return ""


class Client:
    """A connection to one cluster. All HTTP goes through :meth:`request`."""

    def __init__(self, os_client: Any, url: str, *, aws_service: str | None = None, user: str | None = None) -> None:
        self.os = os_client
        self.url = redact_url(url)  # shown in headers, plans and errors: never with credentials
        self.aws_service = aws_service
        self.user = user
        self._retry_lock = threading.Lock()

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
        ignore: tuple[int, ...] = (),
        retry: bool = True,
    ) -> Any:
        """Perform one request; returns the decoded JSON body. Statuses in ``ignore`` return ``None``.

        ``retry=False`` for requests that are not idempotent (creating connectors, registering models):
        a transport-level retry after a lost response would create a duplicate.
        """
        from opensearchpy import exceptions as ose

        start = time.perf_counter()
        status: Any = "ERR"
        try:
            transport = self.os.transport
            if retry:
                result = transport.perform_request(method, path, params=params, body=body, headers=headers)
            else:
                with self._retry_lock:
                    saved = transport.max_retries
                    transport.max_retries = 0
                    try:
                        result = transport.perform_request(method, path, params=params, body=body, headers=headers)
                    finally:
                        transport.max_retries = saved
            status = 200
            return result
        except ose.TransportError as exc:
            status = exc.status_code
            if isinstance(exc.status_code, int) and exc.status_code in ignore:
                return None
            raise map_error(exc, method, path, self.url, self.user) from None
        except ose.OpenSearchException as exc:
            raise map_error(exc, method, path, self.url, self.user) from None
        finally:
            log.info("%s %s -> %s (%.0f ms)", method, path, status, (time.perf_counter() - start) * 1000)

    def info(self) -> dict[str, Any]:
        result: dict[str, Any] = self.request("GET", "/")
        return result

    def close(self) -> None:
        self.os.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _logging_warnings(connection_class: Any) -> Any:
    """``connection_class`` whose response Warning headers are logged (``-v``), not raised as Python
    warnings: a real cluster sends them for deprecations and system-index reads, and opensearch-py would
    print each one on stderr between the kit's own output."""

    def log_warnings(self: Any, warning_headers: Any) -> None:
        for header in warning_headers or ():
            log.info("cluster warning: %s", header)

    return type(f"Kit{connection_class.__name__}", (connection_class,), {"_raise_warnings": log_warnings})


def connect(
    url: str = "http://127.0.0.1:9200",
    *,
    user: str | None = None,
    password: str | None = None,
    ca_certs: str | None = None,
    verify: bool = True,
    aws_region: str | None = None,
    aws_service: str = "es",
    timeout: float = 30.0,
    max_retries: int = 3,
    connection_class: Any = None,
    **_: Any,
) -> Client:
    """Build a client. Nothing is sent until the first request.

    ``connection_class`` replaces opensearch-py's HTTP connection (tests inject faults there, at the
    HTTP boundary).
    """
    from opensearchpy import OpenSearch, RequestsHttpConnection

    # opensearch-py logs request bodies (connector credentials included) at DEBUG on the "opensearch"
    # logger; the kit logs method/path/status/ms itself, so keep that logger quiet unless set explicitly.
    # Its warnings for expected 404s are noise too: failures reach the caller as kit errors instead.
    for name in ("opensearch", "opensearchpy.trace"):  # the trace logger prints curl commands with bodies
        os_logger = logging.getLogger(name)
        if os_logger.level == logging.NOTSET:
            os_logger.setLevel(logging.ERROR)
    try:
        url, url_user, url_password = split_credentials(url)
        parsed = urlparse(url)
        parsed.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError:
        raise Unreachable(f"invalid cluster URL {redact_url(url)!r}", hint="use e.g. http://127.0.0.1:9200") from None
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise Unreachable(f"invalid cluster URL {url!r}", hint="use e.g. http://127.0.0.1:9200")
    if user is None and url_user is not None:
        user, password = url_user, url_password if password is None else password
    if user and password is None and not aws_region:
        raise AuthError(f"--user {user} was given without a password",
                        hint="export OPENSEARCH_PASSWORD=… (the password is read from the environment only)")
    kwargs: dict[str, Any] = dict(
        hosts=[url],
        timeout=timeout,
        max_retries=max_retries,
        retry_on_timeout=True,
        retry_on_status=(502, 503, 504),
        connection_class=_logging_warnings(connection_class or RequestsHttpConnection),
        verify_certs=verify if parsed.scheme == "https" else False,
        ssl_show_warn=False,
    )
    if ca_certs:
        kwargs["ca_certs"] = ca_certs
    if aws_region:
        try:
            import boto3
            from opensearchpy import AWSV4SignerAuth
        except ImportError as exc:  # pragma: no cover - depends on extras
            raise ClusterError("SigV4 needs boto3: pip install 'oskit[aws]'") from exc
        creds = boto3.Session().get_credentials()
        if creds is None:
            raise AuthError("no AWS credentials found for SigV4", hint="configure AWS credentials (env, profile or role)")
        kwargs["http_auth"] = AWSV4SignerAuth(creds, aws_region, aws_service)
    elif user:
        kwargs["http_auth"] = (user, password or "")
    return Client(OpenSearch(**kwargs), url, aws_service=aws_service if aws_region else None,
                  user=user if not aws_region else None)
