#!/usr/bin/env python3
"""What users write by hand today: an SSE-to-MQTT bridge with httpx-sse and paho-mqtt (MQTT 5).

One reader thread per stream; every event's data is published at QoS 1 to <prefix>/s<i>, with
at most --max-inflight publishes not yet acknowledged (without such a bound paho queues or drops
at speed). Readers reconnect with Last-Event-ID. Used by `just bench` as the Python baseline.
"""

import argparse
import sys
import threading
import time

import httpx
import paho.mqtt.client as mqtt
from httpx_sse import connect_sse


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--url", required=True, help="base URL of the SSE source")
    ap.add_argument("--streams", type=int, required=True, help="streams /s/0 .. /s/<n-1>")
    ap.add_argument("--mqtt-host", default="127.0.0.1")
    ap.add_argument("--mqtt-port", type=int, default=1883)
    ap.add_argument("--topic-prefix", default="bench/python")
    ap.add_argument("--max-inflight", type=int, default=1000)
    args = ap.parse_args()

    window = threading.BoundedSemaphore(args.max_inflight)
    connected = threading.Event()

    def on_connect(client, userdata, flags, reason_code, properties):
        connected.set()

    def on_publish(client, userdata, mid, reason_code, properties):
        window.release()

    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"bench-python-{int(time.time() * 1000) % 1000000}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(args.max_inflight)
    client.on_connect = on_connect
    client.on_publish = on_publish
    client.connect(args.mqtt_host, args.mqtt_port, keepalive=60)
    client.loop_start()
    if not connected.wait(20):
        sys.exit("bridge: no CONNACK from the broker")

    def read(i: int) -> None:
        topic = f"{args.topic_prefix}/s{i}"
        url = f"{args.url}/s/{i}"
        last_id = ""
        with httpx.Client(timeout=httpx.Timeout(5.0, read=None)) as http:
            while True:
                headers = {"Last-Event-ID": last_id} if last_id else {}
                try:
                    with connect_sse(http, "GET", url, headers=headers) as source:
                        for sse in source.iter_sse():
                            window.acquire()
                            client.publish(topic, sse.data, qos=1)
                            last_id = sse.id or last_id
                except (httpx.HTTPError, OSError) as e:
                    print(f"bridge: stream {i}: {e}; reconnecting", file=sys.stderr)
                    time.sleep(0.5)

    for i in range(args.streams):
        threading.Thread(target=read, args=(i,), daemon=True).start()
    print("bridge ready", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
