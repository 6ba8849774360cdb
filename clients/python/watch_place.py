#!/usr/bin/python3
"""Joins a train's line from Python and follows the place live, with the client
generated into gen/python (npm run generate; Debian: apt-get install
python3-grpcio python3-protobuf):

    /usr/bin/python3 clients/python/watch_place.py localhost:8000 ktx-101 lee

Reserve, then GetStatus, then WatchStatus until a final state or a seat. Prints
one JSON object per step.
"""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "gen", "python"))

import grpc  # noqa: E402
from google.protobuf.json_format import MessageToDict  # noqa: E402
from ticketqueue.v1 import ticket_queue_pb2 as pb  # noqa: E402
from ticketqueue.v1 import ticket_queue_pb2_grpc as rpc  # noqa: E402


def show(step, message):
    print(json.dumps({"step": step, **MessageToDict(message, preserving_proto_field_name=True)}), flush=True)


def main(address, event_id, user_id):
    with grpc.insecure_channel(address) as channel:
        client = rpc.TicketQueueServiceStub(channel)
        reserved = client.Reserve(pb.ReserveRequest(event_id=event_id, user_id=user_id), timeout=10)
        show("reserve", reserved)
        show("status", client.GetStatus(pb.GetStatusRequest(event_id=event_id, user_id=user_id), timeout=10))
        for update in client.WatchStatus(pb.WatchStatusRequest(event_id=event_id, user_id=user_id, ticket=reserved.ticket)):
            show("watch", update)
            if update.status == pb.RESERVATION_STATUS_RESERVED:
                break


if __name__ == "__main__":
    if len(sys.argv) != 4:
        sys.exit("usage: watch_place.py <host:port> <event_id> <user_id>")
    main(*sys.argv[1:])
