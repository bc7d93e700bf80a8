"""How each Lambda is put together from its settings: one module per Lambda (``planner``,
``processor``, ``retry_worker``), and the parts several of them build the same way
(``parts``). The handlers and the unit tier's whole-pipeline harness wire through these alike,
and each handler imports only its own (the planner's cold start does not load the processor).
"""
