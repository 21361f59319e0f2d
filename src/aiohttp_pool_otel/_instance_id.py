"""``service.instance.id``: every process reports under an identity of its own.

OpenTelemetry Python SDKs before 1.43 set no ``service.instance.id``, and before 1.44 a
process forked after the SDK was configured (gunicorn ``--preload``, multiprocessing's
``fork``) keeps its parent's. Processes that share one identity write the same series
downstream, so each one's cumulative counters overwrite the others' (Prometheus keeps
whichever arrived last). :func:`configure_otlp` closes both gaps with this module: a
resource without an id gets this process's, and a forked child gets a new one.

Imported only by :func:`configure_otlp` (it needs the SDK).
"""

from __future__ import annotations

# Imported before any provider is built, so that its fork hooks are registered before
# theirs (a child runs after_in_child hooks in registration order). Its hook re-creates
# the lock every executor submit takes; SDK 1.44+ providers submit their resource
# detectors to an executor from their own fork hook, and running first they would wait
# forever on that lock, still held as the fork left it.
import concurrent.futures.thread  # noqa: F401
import logging
import os
import threading
import uuid
import weakref
from typing import Any, Optional

from opentelemetry.sdk.resources import SERVICE_INSTANCE_ID, SERVICE_NAME, Resource

_log = logging.getLogger(__name__)

# (pid, id): one id per process, as the SDK's own detector (1.43+) keeps it; a new pid
# (a forked child) gets a new one.
_process_id: Optional[tuple[int, str]] = None
_lock = threading.Lock()
_warned = False


def process_instance_id() -> str:
    """This process's ``service.instance.id`` when the user set none: the SDK's own
    (1.43+), else a random UUID; the same for every call in one process, a new one in a
    forked child."""
    global _process_id
    pid = os.getpid()
    with _lock:
        if _process_id is None or _process_id[0] != pid:
            _process_id = (pid, _sdk_instance_id() or str(uuid.uuid4()))
        return _process_id[1]


def _sdk_instance_id() -> Optional[str]:
    # SDK 1.43+ keeps one id per process; resources it creates elsewhere in this
    # process carry that one, so this process's must be the same.
    try:
        from opentelemetry.sdk.resources import (  # type: ignore[attr-defined,unused-ignore]
            ServiceInstanceIdResourceDetector,
        )

        found = ServiceInstanceIdResourceDetector().detect().attributes.get(SERVICE_INSTANCE_ID)
    except Exception:  # before 1.43 (no such detector), or one that failed: ours then
        return None
    return str(found) if found else None


def process_resource(resource: Optional[Resource], service_name: Optional[str]) -> Resource:
    """The resource for :func:`configure_otlp`'s providers: ``resource`` (else the SDK's
    ``Resource.create()``, which reads ``OTEL_SERVICE_NAME`` and
    ``OTEL_RESOURCE_ATTRIBUTES``), ``service_name`` set on it if given, and a
    ``service.instance.id`` (see :func:`with_instance_id`)."""
    name = {SERVICE_NAME: service_name} if service_name else {}
    if resource is None:
        resource = Resource.create(name)
    elif not isinstance(resource, Resource):
        raise TypeError(
            f"resource must be an opentelemetry.sdk.resources.Resource, got {resource!r}"
        )
    elif name:
        resource = resource.merge(Resource(name))
    return with_instance_id(resource)


def with_instance_id(resource: Resource) -> Resource:
    """``resource`` as it is when it names an instance (the user's choice, or the SDK's
    own on 1.43+), else with this process's id added."""
    try:
        if resource.attributes.get(SERVICE_INSTANCE_ID):
            return resource
        return resource.merge(Resource({SERVICE_INSTANCE_ID: process_instance_id()}))
    except Exception as exc:  # telemetry set-up must not fail for the id's sake
        _warn_once("this process", exc)
        return resource


def renew_in_forked_children(resource: Resource, tracer_provider: Any) -> None:
    """Give ``resource`` a new ``service.instance.id`` in every process forked from
    this one from now on (``tracer_provider`` is the provider built with it). Call it
    after building the providers: a child runs fork hooks in the order they were
    registered, so this one runs after theirs and sees what they did."""
    if not hasattr(os, "register_at_fork"):  # pragma: no cover - not on POSIX
        return
    # Weak: providers a program dropped are neither kept alive nor renewed.
    resource_ref, provider_ref = weakref.ref(resource), weakref.ref(tracer_provider)

    def after_fork_in_child() -> None:
        _renew(resource_ref(), provider_ref())

    os.register_at_fork(after_in_child=after_fork_in_child)


def _reset_in_child() -> None:
    global _lock, _warned
    # Another thread of the parent may have held the lock at the fork: it never returns.
    _lock = threading.Lock()
    _warned = False  # once per process: each worker logs its own


if hasattr(os, "register_at_fork"):  # before any renewal hook: it runs first in a child
    os.register_at_fork(after_in_child=_reset_in_child)


def _renew(resource: Optional[Resource], provider: Any) -> None:
    global _process_id
    if resource is None:
        return
    try:
        current = getattr(provider, "resource", resource)
        if current is not resource:
            # The SDK (1.44+) re-ran its instance detector in its own fork hook and gave
            # the providers a merged resource: its id is this process's.
            refreshed = current.attributes.get(SERVICE_INSTANCE_ID)
            if refreshed:
                _process_id = (os.getpid(), str(refreshed))
            return
        _replace_instance_id(resource, process_instance_id())
    except Exception as exc:  # a fork must never fail for telemetry's sake
        _warn_once(f"forked process {os.getpid()}", exc)


def _replace_instance_id(resource: Resource, instance_id: str) -> None:
    attributes = dict(resource.attributes)
    attributes[SERVICE_INSTANCE_ID] = instance_id
    # A Resource is immutable by contract, but this child owns a copy of its parent's
    # memory and every tracer, span and metric reader in it holds this very object
    # (SDKs before 1.44 give them no other after a fork): new attributes on it are the
    # one change that reaches them all, and the parent never sees it.
    resource._attributes = Resource(attributes, resource.schema_url)._attributes


def _warn_once(who: str, exc: BaseException) -> None:
    global _warned
    if _warned:
        return
    _warned = True
    _log.warning(
        "could not give %s a service.instance.id of its own (%r): processes that share "
        "one overwrite each other's counters downstream; set one per process "
        "(OTEL_RESOURCE_ATTRIBUTES=service.instance.id=...) or call configure_otlp() "
        "in each worker (e.g. gunicorn's post_fork hook)",
        who,
        exc,
    )
