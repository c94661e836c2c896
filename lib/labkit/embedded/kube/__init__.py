"""The embedded Kubernetes API server: state, wire format, routes and controllers.

Split like moto. The state is :mod:`.store` (objects, history, watches, logs) with
:mod:`.resources` (served types), :mod:`.defaults` and :mod:`.validation` (what the API
server fills in and rejects), :mod:`.selectors`, :mod:`.patch` (JSON, merge and strategic
merge patch), :mod:`.apply` (server-side apply, managedFields), :mod:`.schema` (merge keys
and list types) and :mod:`.gc` (finalizers, garbage collection, namespace deletion). The
wire format and routes live in the server modules; behaviour over time in the controllers.
"""
