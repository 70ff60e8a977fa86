import datetime

from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from google.rpc import error_details_pb2 as _error_details_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union
from google.protobuf.struct_pb2 import Struct as Struct
from google.protobuf.struct_pb2 import Value as Value
from google.protobuf.struct_pb2 import ListValue as ListValue
from google.protobuf.struct_pb2 import NullValue as NullValue
from google.rpc.error_details_pb2 import ErrorInfo as ErrorInfo
from google.rpc.error_details_pb2 import RetryInfo as RetryInfo
from google.rpc.error_details_pb2 import DebugInfo as DebugInfo
from google.rpc.error_details_pb2 import QuotaFailure as QuotaFailure
from google.rpc.error_details_pb2 import PreconditionFailure as PreconditionFailure
from google.rpc.error_details_pb2 import BadRequest as BadRequest
from google.rpc.error_details_pb2 import RequestInfo as RequestInfo
from google.rpc.error_details_pb2 import ResourceInfo as ResourceInfo
from google.rpc.error_details_pb2 import Help as Help
from google.rpc.error_details_pb2 import LocalizedMessage as LocalizedMessage

DESCRIPTOR: _descriptor.FileDescriptor
NULL_VALUE: _struct_pb2.NullValue

class OperationMetadata(_message.Message):
    __slots__ = ("job", "state", "create_time", "start_time", "update_time", "end_time", "progress_percent", "status_message", "details", "attempt", "worker", "requested_cancellation", "labels")
    class State(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
        __slots__ = ()
        STATE_UNSPECIFIED: _ClassVar[OperationMetadata.State]
        PENDING: _ClassVar[OperationMetadata.State]
        RUNNING: _ClassVar[OperationMetadata.State]
        CANCELLING: _ClassVar[OperationMetadata.State]
        SUCCEEDED: _ClassVar[OperationMetadata.State]
        FAILED: _ClassVar[OperationMetadata.State]
        CANCELLED: _ClassVar[OperationMetadata.State]
    STATE_UNSPECIFIED: OperationMetadata.State
    PENDING: OperationMetadata.State
    RUNNING: OperationMetadata.State
    CANCELLING: OperationMetadata.State
    SUCCEEDED: OperationMetadata.State
    FAILED: OperationMetadata.State
    CANCELLED: OperationMetadata.State
    class LabelsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    JOB_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CREATE_TIME_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    UPDATE_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_PERCENT_FIELD_NUMBER: _ClassVar[int]
    STATUS_MESSAGE_FIELD_NUMBER: _ClassVar[int]
    DETAILS_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    WORKER_FIELD_NUMBER: _ClassVar[int]
    REQUESTED_CANCELLATION_FIELD_NUMBER: _ClassVar[int]
    LABELS_FIELD_NUMBER: _ClassVar[int]
    job: str
    state: OperationMetadata.State
    create_time: _timestamp_pb2.Timestamp
    start_time: _timestamp_pb2.Timestamp
    update_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    progress_percent: int
    status_message: str
    details: _struct_pb2.Struct
    attempt: int
    worker: str
    requested_cancellation: bool
    labels: _containers.ScalarMap[str, str]
    def __init__(self, job: _Optional[str] = ..., state: _Optional[_Union[OperationMetadata.State, str]] = ..., create_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., update_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., progress_percent: _Optional[int] = ..., status_message: _Optional[str] = ..., details: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ..., attempt: _Optional[int] = ..., worker: _Optional[str] = ..., requested_cancellation: _Optional[bool] = ..., labels: _Optional[_Mapping[str, str]] = ...) -> None: ...
