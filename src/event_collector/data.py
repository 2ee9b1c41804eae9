"""
Payloads, delivery modes, queue types, results and contexts.
"""

from ._data import Context as Context
from ._data import Delivery as Delivery
from ._data import Error as Error
from ._data import Ok as Ok
from ._data import Payload as Payload
from ._data import QueueType as QueueType
from ._data import Result as Result
from ._data import ResultList as ResultList

__all__ = ["Context", "Delivery", "Error", "Ok", "Payload", "QueueType", "Result", "ResultList"]
