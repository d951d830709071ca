"""Ymera's Python API: run workflows on Ymera from Python, as in the original guide.

    from ymera import WorkflowOrchestrator, Task, TaskPriority
    orch = WorkflowOrchestrator()
    result = await orch.execute_workflow(workflow_id="wf_1", tasks=[Task("t1", task_type="echo")])
"""

from ._api import Task, TaskPriority, WorkflowMonitor, WorkflowOrchestrator
from ._client import CancelDenied, WorkflowClient, result_of
from ._deadline import GaveUpWaiting

__all__ = ["CancelDenied", "GaveUpWaiting", "Task", "TaskPriority", "WorkflowClient", "WorkflowMonitor",
           "WorkflowOrchestrator", "result_of"]
