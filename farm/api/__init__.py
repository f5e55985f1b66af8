"""The reelfarm gRPC API (reelfarm.v1.FilmService) over a Director.

    protos.py   the generated modules (regenerated first if a checkout's protos changed)
    convert.py  the one place where protobuf and domain types meet
    service.py  the RPC logic: (request, tenant) -> response, raising domain errors
    auth.py     bearer tokens -> tenants
    status.py   domain errors -> google.rpc.Status (codes and rich details)
    server.py   the grpc.server adapter, health, reflection, limits, keepalive

A Ray Serve ingress reuses service, auth and status with its own thin adapter.
"""
