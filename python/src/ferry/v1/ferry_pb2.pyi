from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class TaskState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    TASK_STATE_UNSPECIFIED: _ClassVar[TaskState]
    TASK_STATE_WAITING_FOR_ENDPOINT: _ClassVar[TaskState]
    TASK_STATE_DISPATCHED: _ClassVar[TaskState]
    TASK_STATE_RUNNING: _ClassVar[TaskState]
    TASK_STATE_SUCCEEDED: _ClassVar[TaskState]
    TASK_STATE_FAILED: _ClassVar[TaskState]
    TASK_STATE_CANCELLED: _ClassVar[TaskState]
    TASK_STATE_WAITING_FOR_DEPENDENCIES: _ClassVar[TaskState]
TASK_STATE_UNSPECIFIED: TaskState
TASK_STATE_WAITING_FOR_ENDPOINT: TaskState
TASK_STATE_DISPATCHED: TaskState
TASK_STATE_RUNNING: TaskState
TASK_STATE_SUCCEEDED: TaskState
TASK_STATE_FAILED: TaskState
TASK_STATE_CANCELLED: TaskState
TASK_STATE_WAITING_FOR_DEPENDENCIES: TaskState

class MemoizeRequest(_message.Message):
    __slots__ = ("id", "off")
    ID_FIELD_NUMBER: _ClassVar[int]
    OFF_FIELD_NUMBER: _ClassVar[int]
    id: str
    off: bool
    def __init__(self, id: _Optional[str] = ..., off: _Optional[bool] = ...) -> None: ...

class HasRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class HasResponse(_message.Message):
    __slots__ = ("present",)
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    present: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, present: _Optional[_Iterable[str]] = ...) -> None: ...

class RegisterChunk(_message.Message):
    __slots__ = ("id", "total_size", "data")
    ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    id: str
    total_size: int
    data: bytes
    def __init__(self, id: _Optional[str] = ..., total_size: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class ExportInfo(_message.Message):
    __slots__ = ("name", "signature")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    name: str
    signature: str
    def __init__(self, name: _Optional[str] = ..., signature: _Optional[str] = ...) -> None: ...

class FunctionInfo(_message.Message):
    __slots__ = ("id", "size", "exports", "imports", "registered_at_ms", "memoize")
    ID_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    EXPORTS_FIELD_NUMBER: _ClassVar[int]
    IMPORTS_FIELD_NUMBER: _ClassVar[int]
    REGISTERED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    MEMOIZE_FIELD_NUMBER: _ClassVar[int]
    id: str
    size: int
    exports: _containers.RepeatedCompositeFieldContainer[ExportInfo]
    imports: _containers.RepeatedScalarFieldContainer[str]
    registered_at_ms: int
    memoize: bool
    def __init__(self, id: _Optional[str] = ..., size: _Optional[int] = ..., exports: _Optional[_Iterable[_Union[ExportInfo, _Mapping]]] = ..., imports: _Optional[_Iterable[str]] = ..., registered_at_ms: _Optional[int] = ..., memoize: _Optional[bool] = ...) -> None: ...

class GetFunctionRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListFunctionsRequest(_message.Message):
    __slots__ = ("all",)
    ALL_FIELD_NUMBER: _ClassVar[int]
    all: bool
    def __init__(self, all: _Optional[bool] = ...) -> None: ...

class ListFunctionsResponse(_message.Message):
    __slots__ = ("functions",)
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    functions: _containers.RepeatedCompositeFieldContainer[FunctionInfo]
    def __init__(self, functions: _Optional[_Iterable[_Union[FunctionInfo, _Mapping]]] = ...) -> None: ...

class ClearCacheRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClearCacheResponse(_message.Message):
    __slots__ = ("removed",)
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    removed: int
    def __init__(self, removed: _Optional[int] = ...) -> None: ...

class Limits(_message.Message):
    __slots__ = ("timeout_ms", "memory_bytes", "output_bytes")
    TIMEOUT_MS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    timeout_ms: int
    memory_bytes: int
    output_bytes: int
    def __init__(self, timeout_ms: _Optional[int] = ..., memory_bytes: _Optional[int] = ..., output_bytes: _Optional[int] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("endpoint", "function_id", "export", "msgpack", "json", "limits", "requires", "memoize", "retries", "retry_on")
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPORT_FIELD_NUMBER: _ClassVar[int]
    MSGPACK_FIELD_NUMBER: _ClassVar[int]
    JSON_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_FIELD_NUMBER: _ClassVar[int]
    MEMOIZE_FIELD_NUMBER: _ClassVar[int]
    RETRIES_FIELD_NUMBER: _ClassVar[int]
    RETRY_ON_FIELD_NUMBER: _ClassVar[int]
    endpoint: str
    function_id: str
    export: str
    msgpack: bytes
    json: str
    limits: Limits
    requires: _containers.RepeatedCompositeFieldContainer[Requirement]
    memoize: bool
    retries: int
    retry_on: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, endpoint: _Optional[str] = ..., function_id: _Optional[str] = ..., export: _Optional[str] = ..., msgpack: _Optional[bytes] = ..., json: _Optional[str] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., requires: _Optional[_Iterable[_Union[Requirement, _Mapping]]] = ..., memoize: _Optional[bool] = ..., retries: _Optional[int] = ..., retry_on: _Optional[_Iterable[str]] = ...) -> None: ...

class Requirement(_message.Message):
    __slots__ = ("gpu", "camera", "mount", "env")
    GPU_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    MOUNT_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    gpu: GpuNeed
    camera: CameraNeed
    mount: MountNeed
    env: EnvNeed
    def __init__(self, gpu: _Optional[_Union[GpuNeed, _Mapping]] = ..., camera: _Optional[_Union[CameraNeed, _Mapping]] = ..., mount: _Optional[_Union[MountNeed, _Mapping]] = ..., env: _Optional[_Union[EnvNeed, _Mapping]] = ...) -> None: ...

class GpuNeed(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CameraNeed(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class MountNeed(_message.Message):
    __slots__ = ("guest",)
    GUEST_FIELD_NUMBER: _ClassVar[int]
    guest: str
    def __init__(self, guest: _Optional[str] = ...) -> None: ...

class EnvNeed(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class SubmitBatchRequest(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[SubmitRequest]
    def __init__(self, tasks: _Optional[_Iterable[_Union[SubmitRequest, _Mapping]]] = ...) -> None: ...

class SubmitBatchResponse(_message.Message):
    __slots__ = ("task_ids",)
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskError(_message.Message):
    __slots__ = ("kind", "message")
    KIND_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    kind: str
    message: str
    def __init__(self, kind: _Optional[str] = ..., message: _Optional[str] = ...) -> None: ...

class StateTime(_message.Message):
    __slots__ = ("state", "at_ms")
    STATE_FIELD_NUMBER: _ClassVar[int]
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    state: TaskState
    at_ms: int
    def __init__(self, state: _Optional[_Union[TaskState, str]] = ..., at_ms: _Optional[int] = ...) -> None: ...

class TaskInfo(_message.Message):
    __slots__ = ("id", "endpoint", "function_id", "export", "state", "history", "result", "error", "depends_on", "cache_hit", "attempts", "output", "lost")
    ID_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPORT_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    HISTORY_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    DEPENDS_ON_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    LOST_FIELD_NUMBER: _ClassVar[int]
    id: str
    endpoint: str
    function_id: str
    export: str
    state: TaskState
    history: _containers.RepeatedCompositeFieldContainer[StateTime]
    result: bytes
    error: TaskError
    depends_on: _containers.RepeatedScalarFieldContainer[str]
    cache_hit: bool
    attempts: int
    output: TaskOutput
    lost: int
    def __init__(self, id: _Optional[str] = ..., endpoint: _Optional[str] = ..., function_id: _Optional[str] = ..., export: _Optional[str] = ..., state: _Optional[_Union[TaskState, str]] = ..., history: _Optional[_Iterable[_Union[StateTime, _Mapping]]] = ..., result: _Optional[bytes] = ..., error: _Optional[_Union[TaskError, _Mapping]] = ..., depends_on: _Optional[_Iterable[str]] = ..., cache_hit: _Optional[bool] = ..., attempts: _Optional[int] = ..., output: _Optional[_Union[TaskOutput, _Mapping]] = ..., lost: _Optional[int] = ...) -> None: ...

class TaskOutput(_message.Message):
    __slots__ = ("stdout", "stderr", "logs", "truncated")
    STDOUT_FIELD_NUMBER: _ClassVar[int]
    STDERR_FIELD_NUMBER: _ClassVar[int]
    LOGS_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    stdout: bytes
    stderr: bytes
    logs: _containers.RepeatedScalarFieldContainer[str]
    truncated: int
    def __init__(self, stdout: _Optional[bytes] = ..., stderr: _Optional[bytes] = ..., logs: _Optional[_Iterable[str]] = ..., truncated: _Optional[int] = ...) -> None: ...

class ListTasksRequest(_message.Message):
    __slots__ = ("states", "endpoint", "after", "limit")
    STATES_FIELD_NUMBER: _ClassVar[int]
    ENDPOINT_FIELD_NUMBER: _ClassVar[int]
    AFTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    states: _containers.RepeatedScalarFieldContainer[TaskState]
    endpoint: str
    after: str
    limit: int
    def __init__(self, states: _Optional[_Iterable[_Union[TaskState, str]]] = ..., endpoint: _Optional[str] = ..., after: _Optional[str] = ..., limit: _Optional[int] = ...) -> None: ...

class ListTasksResponse(_message.Message):
    __slots__ = ("tasks", "next_after")
    TASKS_FIELD_NUMBER: _ClassVar[int]
    NEXT_AFTER_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[TaskInfo]
    next_after: str
    def __init__(self, tasks: _Optional[_Iterable[_Union[TaskInfo, _Mapping]]] = ..., next_after: _Optional[str] = ...) -> None: ...

class GetTaskRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class CancelRequest(_message.Message):
    __slots__ = ("task_id",)
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    def __init__(self, task_id: _Optional[str] = ...) -> None: ...

class WatchRequest(_message.Message):
    __slots__ = ("task_ids",)
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class TaskEvent(_message.Message):
    __slots__ = ("task",)
    TASK_FIELD_NUMBER: _ClassVar[int]
    task: TaskInfo
    def __init__(self, task: _Optional[_Union[TaskInfo, _Mapping]] = ...) -> None: ...

class StatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class EndpointStatus(_message.Message):
    __slots__ = ("name", "sessions", "capacity", "in_flight", "queued", "last_heartbeat_ms", "online", "gpu", "cameras", "tasks_run", "offers", "workers", "blocks", "provider", "manager_seen_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    SESSIONS_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_MS_FIELD_NUMBER: _ClassVar[int]
    ONLINE_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    CAMERAS_FIELD_NUMBER: _ClassVar[int]
    TASKS_RUN_FIELD_NUMBER: _ClassVar[int]
    OFFERS_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MANAGER_SEEN_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    sessions: int
    capacity: int
    in_flight: int
    queued: int
    last_heartbeat_ms: int
    online: bool
    gpu: GpuInfo
    cameras: _containers.RepeatedCompositeFieldContainer[CameraInfo]
    tasks_run: int
    offers: _containers.RepeatedCompositeFieldContainer[Offer]
    workers: _containers.RepeatedCompositeFieldContainer[WorkerStatus]
    blocks: _containers.RepeatedCompositeFieldContainer[BlockStatus]
    provider: str
    manager_seen_ms: int
    def __init__(self, name: _Optional[str] = ..., sessions: _Optional[int] = ..., capacity: _Optional[int] = ..., in_flight: _Optional[int] = ..., queued: _Optional[int] = ..., last_heartbeat_ms: _Optional[int] = ..., online: _Optional[bool] = ..., gpu: _Optional[_Union[GpuInfo, _Mapping]] = ..., cameras: _Optional[_Iterable[_Union[CameraInfo, _Mapping]]] = ..., tasks_run: _Optional[int] = ..., offers: _Optional[_Iterable[_Union[Offer, _Mapping]]] = ..., workers: _Optional[_Iterable[_Union[WorkerStatus, _Mapping]]] = ..., blocks: _Optional[_Iterable[_Union[BlockStatus, _Mapping]]] = ..., provider: _Optional[str] = ..., manager_seen_ms: _Optional[int] = ...) -> None: ...

class WorkerStatus(_message.Message):
    __slots__ = ("session_id", "block", "capacity", "in_flight", "draining", "last_heartbeat_ms")
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    CAPACITY_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    DRAINING_FIELD_NUMBER: _ClassVar[int]
    LAST_HEARTBEAT_MS_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    block: str
    capacity: int
    in_flight: int
    draining: bool
    last_heartbeat_ms: int
    def __init__(self, session_id: _Optional[str] = ..., block: _Optional[str] = ..., capacity: _Optional[int] = ..., in_flight: _Optional[int] = ..., draining: _Optional[bool] = ..., last_heartbeat_ms: _Optional[int] = ...) -> None: ...

class BlockStatus(_message.Message):
    __slots__ = ("id", "job", "phase", "workers", "in_flight")
    ID_FIELD_NUMBER: _ClassVar[int]
    JOB_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    id: str
    job: str
    phase: str
    workers: int
    in_flight: int
    def __init__(self, id: _Optional[str] = ..., job: _Optional[str] = ..., phase: _Optional[str] = ..., workers: _Optional[int] = ..., in_flight: _Optional[int] = ...) -> None: ...

class StateCount(_message.Message):
    __slots__ = ("state", "count")
    STATE_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    state: TaskState
    count: int
    def __init__(self, state: _Optional[_Union[TaskState, str]] = ..., count: _Optional[int] = ...) -> None: ...

class StatusResponse(_message.Message):
    __slots__ = ("endpoints", "tasks", "durability", "durability_loses")
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    DURABILITY_FIELD_NUMBER: _ClassVar[int]
    DURABILITY_LOSES_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[EndpointStatus]
    tasks: _containers.RepeatedCompositeFieldContainer[StateCount]
    durability: str
    durability_loses: str
    def __init__(self, endpoints: _Optional[_Iterable[_Union[EndpointStatus, _Mapping]]] = ..., tasks: _Optional[_Iterable[_Union[StateCount, _Mapping]]] = ..., durability: _Optional[str] = ..., durability_loses: _Optional[str] = ...) -> None: ...

class LoadRequest(_message.Message):
    __slots__ = ("name", "blocks", "provider")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BLOCKS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    name: str
    blocks: _containers.RepeatedCompositeFieldContainer[BlockStatus]
    provider: str
    def __init__(self, name: _Optional[str] = ..., blocks: _Optional[_Iterable[_Union[BlockStatus, _Mapping]]] = ..., provider: _Optional[str] = ...) -> None: ...

class EndpointLoad(_message.Message):
    __slots__ = ("queued", "running", "workers")
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    RUNNING_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    queued: int
    running: int
    workers: _containers.RepeatedCompositeFieldContainer[WorkerStatus]
    def __init__(self, queued: _Optional[int] = ..., running: _Optional[int] = ..., workers: _Optional[_Iterable[_Union[WorkerStatus, _Mapping]]] = ...) -> None: ...

class DrainRequest(_message.Message):
    __slots__ = ("name", "block")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    name: str
    block: str
    def __init__(self, name: _Optional[str] = ..., block: _Optional[str] = ...) -> None: ...

class DrainResponse(_message.Message):
    __slots__ = ("workers",)
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    workers: int
    def __init__(self, workers: _Optional[int] = ...) -> None: ...

class Hello(_message.Message):
    __slots__ = ("name", "concurrency", "version", "offers", "block")
    NAME_FIELD_NUMBER: _ClassVar[int]
    CONCURRENCY_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    OFFERS_FIELD_NUMBER: _ClassVar[int]
    BLOCK_FIELD_NUMBER: _ClassVar[int]
    name: str
    concurrency: int
    version: str
    offers: _containers.RepeatedCompositeFieldContainer[Offer]
    block: str
    def __init__(self, name: _Optional[str] = ..., concurrency: _Optional[int] = ..., version: _Optional[str] = ..., offers: _Optional[_Iterable[_Union[Offer, _Mapping]]] = ..., block: _Optional[str] = ...) -> None: ...

class Offer(_message.Message):
    __slots__ = ("functions", "gpu", "camera", "mount", "env")
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    GPU_FIELD_NUMBER: _ClassVar[int]
    CAMERA_FIELD_NUMBER: _ClassVar[int]
    MOUNT_FIELD_NUMBER: _ClassVar[int]
    ENV_FIELD_NUMBER: _ClassVar[int]
    functions: _containers.RepeatedScalarFieldContainer[str]
    gpu: GpuInfo
    camera: CameraOffer
    mount: MountOffer
    env: EnvOffer
    def __init__(self, functions: _Optional[_Iterable[str]] = ..., gpu: _Optional[_Union[GpuInfo, _Mapping]] = ..., camera: _Optional[_Union[CameraOffer, _Mapping]] = ..., mount: _Optional[_Union[MountOffer, _Mapping]] = ..., env: _Optional[_Union[EnvOffer, _Mapping]] = ...) -> None: ...

class CameraOffer(_message.Message):
    __slots__ = ("name", "backend")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    name: str
    backend: str
    def __init__(self, name: _Optional[str] = ..., backend: _Optional[str] = ...) -> None: ...

class MountOffer(_message.Message):
    __slots__ = ("guest", "read_only")
    GUEST_FIELD_NUMBER: _ClassVar[int]
    READ_ONLY_FIELD_NUMBER: _ClassVar[int]
    guest: str
    read_only: bool
    def __init__(self, guest: _Optional[str] = ..., read_only: _Optional[bool] = ...) -> None: ...

class EnvOffer(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CameraInfo(_message.Message):
    __slots__ = ("name", "backend", "functions")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    name: str
    backend: str
    functions: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., backend: _Optional[str] = ..., functions: _Optional[_Iterable[str]] = ...) -> None: ...

class GpuInfo(_message.Message):
    __slots__ = ("name", "backend", "device_type", "driver")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BACKEND_FIELD_NUMBER: _ClassVar[int]
    DEVICE_TYPE_FIELD_NUMBER: _ClassVar[int]
    DRIVER_FIELD_NUMBER: _ClassVar[int]
    name: str
    backend: str
    device_type: str
    driver: str
    def __init__(self, name: _Optional[str] = ..., backend: _Optional[str] = ..., device_type: _Optional[str] = ..., driver: _Optional[str] = ...) -> None: ...

class TaskOutcome(_message.Message):
    __slots__ = ("task_id", "result", "error", "started_at_ms", "finished_at_ms", "lease", "output")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    result: bytes
    error: TaskError
    started_at_ms: int
    finished_at_ms: int
    lease: int
    output: TaskOutput
    def __init__(self, task_id: _Optional[str] = ..., result: _Optional[bytes] = ..., error: _Optional[_Union[TaskError, _Mapping]] = ..., started_at_ms: _Optional[int] = ..., finished_at_ms: _Optional[int] = ..., lease: _Optional[int] = ..., output: _Optional[_Union[TaskOutput, _Mapping]] = ...) -> None: ...

class EndpointMessage(_message.Message):
    __slots__ = ("hello", "credits", "results", "heartbeat")
    HELLO_FIELD_NUMBER: _ClassVar[int]
    CREDITS_FIELD_NUMBER: _ClassVar[int]
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    hello: Hello
    credits: int
    results: ResultBatch
    heartbeat: Heartbeat
    def __init__(self, hello: _Optional[_Union[Hello, _Mapping]] = ..., credits: _Optional[int] = ..., results: _Optional[_Union[ResultBatch, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ...) -> None: ...

class ResultBatch(_message.Message):
    __slots__ = ("outcomes",)
    OUTCOMES_FIELD_NUMBER: _ClassVar[int]
    outcomes: _containers.RepeatedCompositeFieldContainer[TaskOutcome]
    def __init__(self, outcomes: _Optional[_Iterable[_Union[TaskOutcome, _Mapping]]] = ...) -> None: ...

class Heartbeat(_message.Message):
    __slots__ = ("at_ms", "holding")
    AT_MS_FIELD_NUMBER: _ClassVar[int]
    HOLDING_FIELD_NUMBER: _ClassVar[int]
    at_ms: int
    holding: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, at_ms: _Optional[int] = ..., holding: _Optional[_Iterable[str]] = ...) -> None: ...

class Assignment(_message.Message):
    __slots__ = ("task_id", "function_id", "export", "args", "limits", "requires", "lease", "submitter")
    TASK_ID_FIELD_NUMBER: _ClassVar[int]
    FUNCTION_ID_FIELD_NUMBER: _ClassVar[int]
    EXPORT_FIELD_NUMBER: _ClassVar[int]
    ARGS_FIELD_NUMBER: _ClassVar[int]
    LIMITS_FIELD_NUMBER: _ClassVar[int]
    REQUIRES_FIELD_NUMBER: _ClassVar[int]
    LEASE_FIELD_NUMBER: _ClassVar[int]
    SUBMITTER_FIELD_NUMBER: _ClassVar[int]
    task_id: str
    function_id: str
    export: str
    args: bytes
    limits: Limits
    requires: _containers.RepeatedCompositeFieldContainer[Requirement]
    lease: int
    submitter: str
    def __init__(self, task_id: _Optional[str] = ..., function_id: _Optional[str] = ..., export: _Optional[str] = ..., args: _Optional[bytes] = ..., limits: _Optional[_Union[Limits, _Mapping]] = ..., requires: _Optional[_Iterable[_Union[Requirement, _Mapping]]] = ..., lease: _Optional[int] = ..., submitter: _Optional[str] = ...) -> None: ...

class AssignmentBatch(_message.Message):
    __slots__ = ("tasks",)
    TASKS_FIELD_NUMBER: _ClassVar[int]
    tasks: _containers.RepeatedCompositeFieldContainer[Assignment]
    def __init__(self, tasks: _Optional[_Iterable[_Union[Assignment, _Mapping]]] = ...) -> None: ...

class CancelTasks(_message.Message):
    __slots__ = ("task_ids",)
    TASK_IDS_FIELD_NUMBER: _ClassVar[int]
    task_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, task_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Welcome(_message.Message):
    __slots__ = ("session_id",)
    SESSION_ID_FIELD_NUMBER: _ClassVar[int]
    session_id: str
    def __init__(self, session_id: _Optional[str] = ...) -> None: ...

class ServiceMessage(_message.Message):
    __slots__ = ("welcome", "tasks", "cancel", "heartbeat", "drain")
    WELCOME_FIELD_NUMBER: _ClassVar[int]
    TASKS_FIELD_NUMBER: _ClassVar[int]
    CANCEL_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    DRAIN_FIELD_NUMBER: _ClassVar[int]
    welcome: Welcome
    tasks: AssignmentBatch
    cancel: CancelTasks
    heartbeat: Heartbeat
    drain: Drain
    def __init__(self, welcome: _Optional[_Union[Welcome, _Mapping]] = ..., tasks: _Optional[_Union[AssignmentBatch, _Mapping]] = ..., cancel: _Optional[_Union[CancelTasks, _Mapping]] = ..., heartbeat: _Optional[_Union[Heartbeat, _Mapping]] = ..., drain: _Optional[_Union[Drain, _Mapping]] = ...) -> None: ...

class Drain(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class FetchComponentRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ComponentChunk(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class BlobChunk(_message.Message):
    __slots__ = ("hash", "size", "data", "task")
    HASH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    TASK_FIELD_NUMBER: _ClassVar[int]
    hash: str
    size: int
    data: bytes
    task: str
    def __init__(self, hash: _Optional[str] = ..., size: _Optional[int] = ..., data: _Optional[bytes] = ..., task: _Optional[str] = ...) -> None: ...

class BlobInfo(_message.Message):
    __slots__ = ("hash", "size", "present", "pinned")
    HASH_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    hash: str
    size: int
    present: bool
    pinned: bool
    def __init__(self, hash: _Optional[str] = ..., size: _Optional[int] = ..., present: _Optional[bool] = ..., pinned: _Optional[bool] = ...) -> None: ...

class GetBlobRequest(_message.Message):
    __slots__ = ("hash",)
    HASH_FIELD_NUMBER: _ClassVar[int]
    hash: str
    def __init__(self, hash: _Optional[str] = ...) -> None: ...

class StatBlobRequest(_message.Message):
    __slots__ = ("hash",)
    HASH_FIELD_NUMBER: _ClassVar[int]
    hash: str
    def __init__(self, hash: _Optional[str] = ...) -> None: ...

class PinBlobRequest(_message.Message):
    __slots__ = ("hash", "unpin")
    HASH_FIELD_NUMBER: _ClassVar[int]
    UNPIN_FIELD_NUMBER: _ClassVar[int]
    hash: str
    unpin: bool
    def __init__(self, hash: _Optional[str] = ..., unpin: _Optional[bool] = ...) -> None: ...

class GcRequest(_message.Message):
    __slots__ = ("dry_run", "grace_ms")
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    GRACE_MS_FIELD_NUMBER: _ClassVar[int]
    dry_run: bool
    grace_ms: int
    def __init__(self, dry_run: _Optional[bool] = ..., grace_ms: _Optional[int] = ...) -> None: ...

class GcReport(_message.Message):
    __slots__ = ("removed", "removed_bytes", "kept", "kept_bytes", "referenced", "pinned", "young", "removed_hashes")
    REMOVED_FIELD_NUMBER: _ClassVar[int]
    REMOVED_BYTES_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    KEPT_BYTES_FIELD_NUMBER: _ClassVar[int]
    REFERENCED_FIELD_NUMBER: _ClassVar[int]
    PINNED_FIELD_NUMBER: _ClassVar[int]
    YOUNG_FIELD_NUMBER: _ClassVar[int]
    REMOVED_HASHES_FIELD_NUMBER: _ClassVar[int]
    removed: int
    removed_bytes: int
    kept: int
    kept_bytes: int
    referenced: int
    pinned: int
    young: int
    removed_hashes: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, removed: _Optional[int] = ..., removed_bytes: _Optional[int] = ..., kept: _Optional[int] = ..., kept_bytes: _Optional[int] = ..., referenced: _Optional[int] = ..., pinned: _Optional[int] = ..., young: _Optional[int] = ..., removed_hashes: _Optional[_Iterable[str]] = ...) -> None: ...

class RegisterEndpointRequest(_message.Message):
    __slots__ = ("name", "rotate")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROTATE_FIELD_NUMBER: _ClassVar[int]
    name: str
    rotate: bool
    def __init__(self, name: _Optional[str] = ..., rotate: _Optional[bool] = ...) -> None: ...

class RegisterEndpointResponse(_message.Message):
    __slots__ = ("info", "credential")
    INFO_FIELD_NUMBER: _ClassVar[int]
    CREDENTIAL_FIELD_NUMBER: _ClassVar[int]
    info: EndpointInfo
    credential: str
    def __init__(self, info: _Optional[_Union[EndpointInfo, _Mapping]] = ..., credential: _Optional[str] = ...) -> None: ...

class EndpointPolicy(_message.Message):
    __slots__ = ("submitters", "allowed_functions", "max_limits", "device_users")
    SUBMITTERS_FIELD_NUMBER: _ClassVar[int]
    ALLOWED_FUNCTIONS_FIELD_NUMBER: _ClassVar[int]
    MAX_LIMITS_FIELD_NUMBER: _ClassVar[int]
    DEVICE_USERS_FIELD_NUMBER: _ClassVar[int]
    submitters: _containers.RepeatedScalarFieldContainer[str]
    allowed_functions: _containers.RepeatedScalarFieldContainer[str]
    max_limits: Limits
    device_users: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, submitters: _Optional[_Iterable[str]] = ..., allowed_functions: _Optional[_Iterable[str]] = ..., max_limits: _Optional[_Union[Limits, _Mapping]] = ..., device_users: _Optional[_Iterable[str]] = ...) -> None: ...

class EndpointInfo(_message.Message):
    __slots__ = ("name", "owner", "policy", "created_at_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    OWNER_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    owner: str
    policy: EndpointPolicy
    created_at_ms: int
    def __init__(self, name: _Optional[str] = ..., owner: _Optional[str] = ..., policy: _Optional[_Union[EndpointPolicy, _Mapping]] = ..., created_at_ms: _Optional[int] = ...) -> None: ...

class SetEndpointPolicyRequest(_message.Message):
    __slots__ = ("name", "policy")
    NAME_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    name: str
    policy: EndpointPolicy
    def __init__(self, name: _Optional[str] = ..., policy: _Optional[_Union[EndpointPolicy, _Mapping]] = ...) -> None: ...

class ListEndpointsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListEndpointsResponse(_message.Message):
    __slots__ = ("endpoints",)
    ENDPOINTS_FIELD_NUMBER: _ClassVar[int]
    endpoints: _containers.RepeatedCompositeFieldContainer[EndpointInfo]
    def __init__(self, endpoints: _Optional[_Iterable[_Union[EndpointInfo, _Mapping]]] = ...) -> None: ...

class WhoAmIRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class WhoAmIResponse(_message.Message):
    __slots__ = ("user", "admin", "token_id", "expires_at_ms")
    USER_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_ID_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    user: str
    admin: bool
    token_id: str
    expires_at_ms: int
    def __init__(self, user: _Optional[str] = ..., admin: _Optional[bool] = ..., token_id: _Optional[str] = ..., expires_at_ms: _Optional[int] = ...) -> None: ...

class AddUserRequest(_message.Message):
    __slots__ = ("name", "admin")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    name: str
    admin: bool
    def __init__(self, name: _Optional[str] = ..., admin: _Optional[bool] = ...) -> None: ...

class UserInfo(_message.Message):
    __slots__ = ("name", "admin", "created_at_ms")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ADMIN_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    name: str
    admin: bool
    created_at_ms: int
    def __init__(self, name: _Optional[str] = ..., admin: _Optional[bool] = ..., created_at_ms: _Optional[int] = ...) -> None: ...

class ListUsersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListUsersResponse(_message.Message):
    __slots__ = ("users",)
    USERS_FIELD_NUMBER: _ClassVar[int]
    users: _containers.RepeatedCompositeFieldContainer[UserInfo]
    def __init__(self, users: _Optional[_Iterable[_Union[UserInfo, _Mapping]]] = ...) -> None: ...

class CreateTokenRequest(_message.Message):
    __slots__ = ("user", "expires_in_ms", "label")
    USER_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_IN_MS_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    user: str
    expires_in_ms: int
    label: str
    def __init__(self, user: _Optional[str] = ..., expires_in_ms: _Optional[int] = ..., label: _Optional[str] = ...) -> None: ...

class CreateTokenResponse(_message.Message):
    __slots__ = ("info", "token")
    INFO_FIELD_NUMBER: _ClassVar[int]
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    info: TokenInfo
    token: str
    def __init__(self, info: _Optional[_Union[TokenInfo, _Mapping]] = ..., token: _Optional[str] = ...) -> None: ...

class TokenInfo(_message.Message):
    __slots__ = ("id", "user", "label", "created_at_ms", "expires_at_ms", "revoked_at_ms")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_MS_FIELD_NUMBER: _ClassVar[int]
    REVOKED_AT_MS_FIELD_NUMBER: _ClassVar[int]
    id: str
    user: str
    label: str
    created_at_ms: int
    expires_at_ms: int
    revoked_at_ms: int
    def __init__(self, id: _Optional[str] = ..., user: _Optional[str] = ..., label: _Optional[str] = ..., created_at_ms: _Optional[int] = ..., expires_at_ms: _Optional[int] = ..., revoked_at_ms: _Optional[int] = ...) -> None: ...

class RevokeTokenRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class ListTokensRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListTokensResponse(_message.Message):
    __slots__ = ("tokens",)
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    tokens: _containers.RepeatedCompositeFieldContainer[TokenInfo]
    def __init__(self, tokens: _Optional[_Iterable[_Union[TokenInfo, _Mapping]]] = ...) -> None: ...
