"""Standard gRPC health checking and server reflection answer on the API port."""

from __future__ import annotations

import grpc
import pytest
from google.protobuf.descriptor_pool import DescriptorPool
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

pytestmark = pytest.mark.grpc


def test_health_reports_serving(api_server):
    with grpc.insecure_channel(api_server.address) as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "reelfarm.v1.FilmService"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING
        with pytest.raises(grpc.RpcError) as unknown:
            stub.Check(health_pb2.HealthCheckRequest(service="no.such.Service"), timeout=10)
        assert unknown.value.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_describes_the_api(api_server):
    with grpc.insecure_channel(api_server.address) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = set(database.get_services())
        assert {"reelfarm.v1.FilmService", "grpc.health.v1.Health",
                "grpc.reflection.v1alpha.ServerReflection"} <= services
        pool = DescriptorPool(database)
        service = pool.FindServiceByName("reelfarm.v1.FilmService")
        assert [m.name for m in service.methods] == [
            "CreateFilm", "GetFilm", "ListFilms", "UpdateFilm", "CancelFilm", "PauseFilm",
            "ResumeFilm", "RetryFilm", "RerenderFilm", "ListExecutions", "WatchFilm",
            "StreamFrames", "GetArtifact", "UploadMedia", "GetMedia", "ListMedia"]
        state = pool.FindMessageTypeByName("reelfarm.v1.Film").enum_types_by_name["State"]
        assert state.values[0].name == "STATE_UNSPECIFIED" and state.values[0].number == 0
