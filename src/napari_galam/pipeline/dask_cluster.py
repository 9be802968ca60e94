"""Dask clients of the package: a LocalCluster only its user can reach, or a real scheduler.

Every Dask client of the package is opened here (:func:`dask_client`, re-exported by
:mod:`napari_galam.pipeline.distributed`).

A new ``LocalCluster`` listens on 127.0.0.1 with mutual TLS: the scheduler, the workers
and this client share self-signed credentials made for this run
(``distributed.security.Security.temporary()``, kept in memory and handed to the worker
processes over their start-up pipe), so another local process, which does not hold them,
can neither submit work nor join as a worker. Its scheduler and workers serve no HTTP
routes unless a dashboard is asked for: ``distributed``'s scheduler starts an HTTP
server whatever ``dashboard_address`` says (on port 8787 when none is given), with the
routes listed in the ``distributed.scheduler.http.routes`` setting (worker information,
JSON state, Prometheus metrics, a proxy); :func:`start_client` empties those lists for
the cluster's processes and binds the server to a free loopback port.

Dask's own log lines from the cluster's processes (a worker that lost its scheduler's
connection while the cluster shuts down, a worker restarted after a crash) reach the
user's terminal as one line each, without a traceback
(:mod:`napari_galam.pipeline.dask_logs`): a failed
partition already has its row with the reason, and a traceback in a terminal reads as a
crash of ``galam`` itself.

An existing scheduler (``--scheduler``) is reached with the TLS credentials the user
gives (:func:`security_from_options`: a CA file, a certificate and a key, and/or a YAML
file in the layout of Dask's configuration), or with those of the Dask configuration.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from napari_galam.errors import GalamInputError

__all__ = [
    "security_from_options",
    "start_client",
    "dask_client",
    "HTTP_ROUTE_SETTINGS",
]

#: Dask settings that list the HTTP routes of schedulers and workers (emptied when no
#: dashboard is asked for).
HTTP_ROUTE_SETTINGS = ("distributed.scheduler.http.routes", "distributed.worker.http.routes")
_ONE_THREAD = (
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "TF_NUM_INTRAOP_THREADS",
    "TF_NUM_INTEROP_THREADS",
)
_PEM = "-----BEGIN"


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested settings -> ``{"a.b.c": value}`` (the form ``dask.config.set`` takes)."""
    flat: dict[str, Any] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def _tls_settings_of_file(file: Path) -> dict[str, Any]:
    """The ``distributed.comm`` settings of a YAML file in the layout of Dask's config.

    File names in it are taken relative to the YAML file's folder.
    """
    import yaml

    try:
        loaded = yaml.safe_load(file.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise GalamInputError(f"--security {file}: not a readable YAML file ({exc}).") from exc
    settings = {
        key: value
        for key, value in _flatten(loaded if isinstance(loaded, Mapping) else {}).items()
        if key.startswith("distributed.comm.")
    }
    if not any(key.startswith("distributed.comm.tls.") for key in settings):
        raise GalamInputError(
            f"--security {file}: no distributed.comm.tls settings; expected e.g.\n"
            "distributed:\n  comm:\n    tls:\n      ca-file: ca.pem\n"
            "      client:\n        cert: client.pem\n        key: client-key.pem"
        )
    for key, value in settings.items():
        if isinstance(value, str) and _PEM not in value and key.endswith(("file", "cert", "key")):
            path = Path(os.path.expanduser(value))
            settings[key] = str(path if path.is_absolute() else file.parent / path)
    return settings


def _check_credential_file(option: str, value: str | None) -> None:
    if value and _PEM not in value and not Path(value).is_file():
        raise GalamInputError(f"{option} {value}: no such file (expected a PEM file).")


def security_from_options(
    *,
    tls_ca_file: str | os.PathLike | None = None,
    tls_cert: str | os.PathLike | None = None,
    tls_key: str | os.PathLike | None = None,
    security_file: str | os.PathLike | None = None,
) -> Any:
    """The ``distributed.security.Security`` to reach an existing scheduler, or None.

    Parameters
    ----------
    tls_ca_file, tls_cert, tls_key
        PEM files: the certificate authority that signed the cluster's certificates,
        and this client's certificate and private key (the key may be inside the
        certificate file).
    security_file
        A YAML file in the layout of Dask's configuration (``distributed: comm: tls:
        ca-file, client: cert, key``); the three options above take precedence.

    Returns
    -------
    distributed.security.Security or None
        None when nothing was given (the Dask configuration then applies).

    Raises
    ------
    GalamInputError
        When a file is missing or unreadable, or a certificate is given without a CA.
    """
    import dask
    from distributed.security import Security

    given = {
        "--tls-ca-file": tls_ca_file,
        "--tls-cert": tls_cert,
        "--tls-key": tls_key,
    }
    if security_file is None and not any(given.values()):
        return None
    settings = _tls_settings_of_file(Path(security_file)) if security_file is not None else {}
    names = {
        "--tls-ca-file": "distributed.comm.tls.ca-file",
        "--tls-cert": "distributed.comm.tls.client.cert",
        "--tls-key": "distributed.comm.tls.client.key",
    }
    for option, value in given.items():
        if value is not None:
            settings[names[option]] = str(value)
    for option, name in names.items():
        _check_credential_file(option, settings.get(name))
    if not settings.get(names["--tls-ca-file"]) or not settings.get(names["--tls-cert"]):
        raise GalamInputError(
            "a TLS scheduler needs --tls-ca-file and --tls-cert (and --tls-key unless the "
            "key is inside the certificate file), or --security with those settings."
        )
    settings.setdefault("distributed.comm.require-encryption", True)
    with dask.config.set(settings):
        return Security()


def _needs_credentials(scheduler: str, security: Any) -> bool:
    """A ``tls://`` address with no client certificate given or configured."""
    from distributed.security import Security

    if not scheduler.startswith("tls://"):
        return False
    security = security if security is not None else Security()
    return not (security.tls_ca_file and security.tls_client_cert)


def _connect(scheduler: str, security: Any) -> Any:
    """A client of an existing scheduler."""
    from distributed import Client

    if _needs_credentials(scheduler, security):
        raise GalamInputError(
            f"--scheduler {scheduler}: a TLS scheduler needs this client's credentials: "
            "give --tls-ca-file, --tls-cert and --tls-key, or --security FILE."
        )
    try:
        return Client(scheduler, timeout="20s", security=security)
    except (OSError, TimeoutError) as exc:
        hint = " (with TLS: check the CA, certificate and key)" if "tls" in scheduler else ""
        raise GalamInputError(
            f"--scheduler {scheduler}: no Dask scheduler answered there{hint} ({exc})."
        ) from exc


def _default_workers() -> int:
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0)) or 1
    return os.cpu_count() or 1


def start_client(
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    security: Any = None,
    dashboard: bool = False,
) -> tuple[Any, Any]:
    """A Dask client: on ``scheduler`` if given, else on a new LocalCluster.

    The LocalCluster has ``n_workers`` processes (default: the CPU cores this process
    may use) of one thread each, listening on 127.0.0.1 only, with mutual TLS on
    temporary credentials (see the module docs) and no HTTP routes unless
    ``dashboard``.

    Parameters
    ----------
    scheduler
        Address of a running scheduler (``tcp://`` or ``tls://host:port``).
    n_workers
        Worker processes of a new LocalCluster.
    security
        ``distributed.security.Security`` for ``scheduler`` (see
        :func:`security_from_options`); a LocalCluster makes its own.
    dashboard
        LocalCluster only: serve Dask's dashboard on 127.0.0.1 (port 8787, or a free
        one); its link is ``client.dashboard_link``.

    Returns
    -------
    (client, cluster)
        ``cluster`` is None for an existing scheduler; close both when done.

    Raises
    ------
    GalamInputError
        When the scheduler cannot be reached or ``n_workers`` is not positive.
    """
    if scheduler:
        return _connect(scheduler, security), None
    import dask
    from distributed import Client, LocalCluster
    from distributed.security import Security

    from napari_galam.pipeline.dask_logs import OneLineWorkerLogs

    n_workers = _default_workers() if n_workers is None else n_workers
    if n_workers < 1:
        raise GalamInputError(f"--workers: expected a positive integer, got {n_workers}.")
    env = dict.fromkeys(_ONE_THREAD, "1")
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    settings: dict[str, Any] = {} if dashboard else dict.fromkeys(HTTP_ROUTE_SETTINGS, [])
    # Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which turns off glibc's
    # dynamic mmap threshold: every array over 128 KiB is then fresh pages from the
    # kernel, and a pPXF fit made of thousands of them took 2.8 s instead of 0.9 s
    # (pipeline/fit.py measures and undoes it on clusters the package did not start)
    settings["distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_"] = None
    with dask.config.set(settings):  # the nannies copy the settings for their workers
        cluster = LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address="127.0.0.1:8787" if dashboard else "127.0.0.1:0",
            scheduler_kwargs={"dashboard": dashboard},
            security=Security.temporary(),
            env=env,
        )
    try:
        client = Client(cluster)
        client.register_plugin(OneLineWorkerLogs())
    except BaseException:
        cluster.close()
        raise
    return client, cluster


@contextmanager
def dask_client(
    client: Any = None,
    *,
    scheduler: str | None = None,
    n_workers: int | None = None,
    security: Any = None,
    dashboard: bool = False,
) -> Iterator[Any]:
    """A Dask client for the ``with`` block: ``client`` as given, else a new one.

    The one place that opens and closes a client (see :func:`start_client`): a client
    passed in is used and left open; one made here is closed with its LocalCluster.
    """
    if client is not None:
        yield client
        return
    from napari_galam.pipeline.dask_logs import fold_dask_logs, unfold_dask_logs

    if scheduler is None:
        fold_dask_logs()  # the LocalCluster's scheduler and nannies log in this process
    try:
        client, cluster = start_client(
            scheduler=scheduler, n_workers=n_workers, security=security, dashboard=dashboard
        )
        try:
            yield client
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    finally:
        if scheduler is None:
            unfold_dask_logs()
