"""A subset of Windmill's Python client (wmill), for vane's WASI CPython.

A guest has no network: every call is one request through the virtual file
/script/_vane_api, which vane's host turns into an HTTP call to its own API
with this job's WM_TOKEN (see runtime/apifile). So a job can read and
write exactly what its token allows, and each call is subject to the same
checks as over HTTP.
"""

import json
import os
import time
import urllib.parse

__all__ = [
    "WmillError",
    "get_workspace",
    "get_job_id",
    "get_root_job_id",
    "get_state_path",
    "get_variable",
    "set_variable",
    "get_resource",
    "set_resource",
    "get_state",
    "set_state",
    "get_result",
    "run_script",
    "run_script_by_path",
    "run_script_by_hash",
    "run_script_async",
    "run_script_by_path_async",
    "run_flow_async",
    "wait_job",
    "get_job",
    "cancel_job",
    "get_resume_urls",
    "api",
]

_API_FILE = "/script/_vane_api"
_CHUNK = 1 << 20


class WmillError(Exception):
    """A failed API call: status is the HTTP status, message the API's text."""

    def __init__(self, status, message):
        super().__init__(f"{message} (HTTP {status})" if status else message)
        self.status = status
        self.message = message


def api(method, path, body=None):
    """Calls vane's API: path is under /api/; body is sent as JSON. Returns
    (status, the response's bytes); use the helpers below for JSON."""
    head = f"{method} {path}\n".encode()
    payload = head if body is None else head + json.dumps(body).encode()
    fd = os.open(_API_FILE, os.O_RDWR)
    try:
        view = memoryview(payload)
        while view:
            n = os.write(fd, view)
            view = view[n:]
        chunks = []
        while True:
            chunk = os.read(fd, _CHUNK)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    status, _, data = b"".join(chunks).partition(b"\n")
    return int(status), data


def _call(method, path, body=None, ok404=False):
    status, data = api(method, "/api" + path, body)
    if ok404 and status == 404:
        return _NOT_FOUND
    if status >= 300:
        raise WmillError(status, data.decode("utf-8", "replace").strip() or f"{method} {path} failed")
    if not data:
        return None
    try:
        return json.loads(data)
    except ValueError:
        return data.decode("utf-8", "replace")


_NOT_FOUND = object()


def _ws():
    return "/w/" + _quote(get_workspace())


def _quote(path):
    return urllib.parse.quote(path, safe="/")


def get_workspace():
    """The job's workspace (WM_WORKSPACE)."""
    return os.environ.get("WM_WORKSPACE", "")


def get_job_id():
    """This job's id (WM_JOB_ID)."""
    return os.environ.get("WM_JOB_ID", "")


def get_root_job_id(job_id=None):
    """The id of the job at the top of job_id's flow tree (default: this
    job's), the job itself outside a flow. This job's comes from its
    environment; another's from jobs_u/get_root_job_id, as Windmill's
    client asks for it."""
    if job_id is None or job_id == get_job_id():
        return os.environ.get("WM_ROOT_FLOW_JOB_ID") or get_job_id()
    return _call("GET", f"{_ws()}/jobs_u/get_root_job_id/{_quote(job_id)}")


def get_state_path():
    """Where get_state and set_state keep this script's state (WM_STATE_PATH)."""
    return os.environ.get("WM_STATE_PATH_NEW") or os.environ.get("WM_STATE_PATH", "")


def get_variable(path):
    """A variable's value (secrets decrypted)."""
    return _call("GET", f"{_ws()}/variables/get_value/{_quote(path)}")


def set_variable(path, value, is_secret=False):
    """Sets a variable's value, creating it if there is none."""
    if _call("GET", f"{_ws()}/variables/exists/{_quote(path)}"):
        _call("POST", f"{_ws()}/variables/update/{_quote(path)}", {"value": value})
    else:
        _call("POST", f"{_ws()}/variables/create",
              {"path": path, "value": value, "is_secret": is_secret, "description": ""})


def get_resource(path=None, none_if_undefined=False):
    """A resource's value, its $var:/$res: references resolved; None for a
    missing one with none_if_undefined."""
    path = path or get_state_path()
    got = _call("GET", f"{_ws()}/resources/get_value_interpolated/{_quote(path)}", ok404=none_if_undefined)
    return None if got is _NOT_FOUND else got


def set_resource(path, value, resource_type="any"):
    """Sets a resource's value, creating it (of resource_type) if there is none."""
    path = path or get_state_path()
    _call("POST", f"{_ws()}/resources/create?update_if_exists=true",
          {"path": path, "value": value, "resource_type": resource_type})


def get_state():
    """The state kept by set_state (None before the first)."""
    return get_resource(get_state_path(), none_if_undefined=True)


def set_state(value):
    """Keeps value for the next runs of this script (a resource of type state
    at WM_STATE_PATH)."""
    set_resource(get_state_path(), value, resource_type="state")


def get_result(job_id):
    """A completed job's result."""
    return _call("GET", f"{_ws()}/jobs_u/completed/get_result/{_quote(job_id)}")


def run_script_by_path(path, args=None):
    """Runs a script and waits for its result (a failure raises). The job
    holds its worker while it waits: with one worker, this deadlocks until
    the job's timeout."""
    return _call("POST", f"{_ws()}/jobs/run_wait_result/p/{_quote(path)}", args or {})


def run_script_by_hash(hash_, args=None):
    """Runs a script version by hash and waits for its result."""
    return _call("POST", f"{_ws()}/jobs/run_wait_result/h/{_quote(hash_)}", args or {})


def run_script(path=None, hash_=None, args=None):
    """Runs a script by path or hash and waits for its result."""
    if hash_:
        return run_script_by_hash(hash_, args)
    if not path:
        raise WmillError(0, "run_script: a path or a hash is required")
    return run_script_by_path(path, args)


def run_script_by_path_async(path, args=None):
    """Queues a script and returns the job's id."""
    return _call("POST", f"{_ws()}/jobs/run/p/{_quote(path)}", args or {})


def run_script_async(path=None, hash_=None, args=None):
    """Queues a script by path or hash and returns the job's id."""
    if hash_:
        return _call("POST", f"{_ws()}/jobs/run/h/{_quote(hash_)}", args or {})
    if not path:
        raise WmillError(0, "run_script_async: a path or a hash is required")
    return run_script_by_path_async(path, args)


# Flows, waiting for jobs and approvals, with the names, arguments and
# requests of Windmill's Python client (python-client/wmill/wmill/client.py:
# run_flow_async, wait_job, get_job, cancel_job, get_resume_urls).


def _with_query(path, params):
    """path with the params that are not None as its query string."""
    q = {k: v for k, v in params.items() if v is not None}
    return path + "?" + urllib.parse.urlencode(q) if q else path


def run_flow_async(path, args=None, scheduled_in_secs=None, do_not_track_in_parent=True):
    """Queues the flow at path and returns the flow job's id. With
    do_not_track_in_parent=False the flow job records this job as its
    parent (parent_job) and this job's root flow (root_job), as Windmill's
    client does when it means to wait for it."""
    params = {"scheduled_in_secs": scheduled_in_secs or None}
    if not do_not_track_in_parent:
        params["parent_job"] = get_job_id() or None
        params["root_job"] = os.environ.get("WM_ROOT_FLOW_JOB_ID") or None
    if not path:
        raise WmillError(0, "run_flow_async: a path is required")
    return _call("POST", _with_query(f"{_ws()}/jobs/run/f/{_quote(path)}", params), args or {})


def wait_job(job_id, timeout=None, verbose=False, cleanup=True, assert_result_is_not_none=False):
    """Waits for job job_id to complete and returns its result; a failed
    job raises Exception("Job <id> was not successful: <error>"), as
    Windmill's wait_job. It polls get_result_maybe every 0.5 s. With a
    timeout (seconds, or a timedelta) the job is canceled when it runs out
    and TimeoutError is raised. cleanup is accepted for Windmill's
    signature: a guest cannot cancel the job at its own exit, which ends the
    job's API access with it. The job waiting holds its worker."""
    if hasattr(timeout, "total_seconds"):
        timeout = timeout.total_seconds()
    start = time.monotonic()
    while True:
        got = _call("GET", f"{_ws()}/jobs_u/completed/get_result_maybe/{_quote(job_id)}")
        if got.get("completed"):
            result = got.get("result")
            if got.get("success"):
                if result is None and assert_result_is_not_none:
                    raise Exception("Result was none")
                return result
            error = result.get("error") if isinstance(result, dict) else result
            raise Exception(f"Job {job_id} was not successful: {error}")
        if timeout and time.monotonic() - start > timeout:
            cancel_job(job_id, "reached timeout")
            raise TimeoutError("reached timeout")
        if verbose:
            print(f"sleeping 0.5 seconds for job_id = {job_id!r}")
        time.sleep(0.5)


def get_job(job_id):
    """A queued, running or completed job, as jobs_u/get shows it."""
    return _call("GET", f"{_ws()}/jobs_u/get/{_quote(job_id)}")


def cancel_job(job_id, reason=None):
    """Cancels a queued or running job."""
    return _call("POST", f"{_ws()}/jobs_u/queue/cancel/{_quote(job_id)}", {"reason": reason or "canceled by a job"})


def get_resume_urls(approver=None):
    """The URLs that resume (approve) or cancel (disapprove) the suspend
    after this job's step: {"approvalPage", "resume", "cancel"}, signed for
    a random resume id, as Windmill's get_resume_urls."""
    import random  # here: most jobs never need it, and every job imports wmill

    nonce = random.randint(0, 1000000000)
    job_id = get_job_id() or "NO_ID"
    return _call("GET", _with_query(f"{_ws()}/jobs/resume_urls/{_quote(job_id)}/{nonce}", {"approver": approver}))
