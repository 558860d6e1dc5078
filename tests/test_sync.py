"""The MQTT link against a real Mosquitto: status and Last Will, retained enrollment sync,
events that survive a broker outage (paho's queue) and a restart (the outbox)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
from contextlib import contextmanager
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

from daemon.door.link import MqttLink
from daemon.events import unlock_event
from daemon.events.mqtt import MqttEventSink
from daemon.events.outbox import Outbox
from daemon.protocol.broker import BrokerSettings
from daemon.protocol.topics import enroll_topic, event_topic, status_topic
from daemon_helpers import (TEST_TRUST, Probe, enrollment, free_port, publish, revocation, signed,
                            unit_vectors)

REPO = Path(__file__).resolve().parent.parent


def new_site() -> str:
    return f"s{uuid.uuid4().hex[:10]}"


def make_link(broker, site, device="door1", model_id="m1") -> MqttLink:
    return MqttLink(broker=BrokerSettings(broker.host, broker.port), site=site, device_id=device,
                    model_id=model_id, embedding_size=128, trust=TEST_TRUST, keepalive_s=5,
                    reconnect_min_s=1, reconnect_max_s=1)


def wait(predicate, timeout=10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def make_sink(link, folder, topic, unlock_max_age_s=30.0) -> MqttEventSink:
    return MqttEventSink(link, Outbox.open(folder), topic, unlock_max_age_s=unlock_max_age_s, max_age_s=3600.0)


def event(site, person="alice"):
    return unlock_event(device_id="door1", site=site, person_id=person, name=person, distance=0.5,
                        frames_voted=3, model_id="m1", ts=time.time())


def test_status_is_online_while_connected_and_offline_after_a_clean_stop(broker):
    site = new_site()
    topic = status_topic(site, "door1")
    probe = Probe(broker, topic)
    link = make_link(broker, site)
    link.start()
    try:
        assert probe.wait_for(lambda p: p.payloads(topic)[-1:] == [b"online"])
    finally:
        link.stop()
    assert probe.wait_for(lambda p: p.payloads(topic)[-1:] == [b"offline"])
    probe.close()
    late = Probe(broker, topic)  # retained: whoever looks later sees the last state
    assert late.wait_for(lambda p: p.messages == [(topic, b"offline", True)])
    late.close()


def test_last_will_marks_a_crashed_device_offline(broker):
    site = new_site()
    topic = status_topic(site, "door1")
    probe = Probe(broker, topic)
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(REPO)!r})
        from daemon.protocol.broker import BrokerSettings
        from daemon.door.link import MqttLink
        from daemon.protocol.signing import Trust
        link = MqttLink(broker=BrokerSettings({broker.host!r}, {broker.port}), site={site!r}, device_id="door1",
                        model_id="m1", embedding_size=128, trust=Trust(), keepalive_s=5)
        link.start()
        while not link.connected:
            time.sleep(0.05)
        print("connected", flush=True)
        time.sleep(60)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    try:
        assert proc.stdout.readline().strip() == b"connected"
        assert probe.wait_for(lambda p: p.payloads(topic)[-1:] == [b"online"])
        os.kill(proc.pid, signal.SIGKILL)  # no DISCONNECT packet: the broker must publish the will
    finally:
        proc.kill()
        proc.wait()
    assert probe.wait_for(lambda p: p.payloads(topic)[-1:] == [b"offline"])
    probe.close()


def test_retained_enrollments_reach_a_device_that_connects_later(broker):
    site = new_site()
    publish(broker, *enrollment(site, "alice", unit_vectors(2), version=5))
    publish(broker, *enrollment(site, "bob", unit_vectors(1), version=1))
    publish(broker, *revocation(site, "bob", 2))  # revokes bob on every model
    publish(broker, *signed(enroll_topic(site, "m1", "eve"), b'{"person_id": "eve", "version": 1}'))
    publish(broker, *enrollment(site, "frank", unit_vectors(1), model_id="m2"))  # another model: not ours
    publish(broker, *enrollment(new_site(), "carol", unit_vectors(1)))
    link = make_link(broker, site)
    link.start()
    try:
        assert link.wait_for_sync(10)
        records = {r.person_id: r for r in link.take_records()}
        assert set(records) == {"alice", "bob"}  # not eve (malformed), frank (model m2), carol (another site)
        assert records["alice"].version == 5 and len(records["alice"].encodings) == 2
        assert records["bob"].deleted and records["bob"].version == 2
        assert link.rejected_counts() == {"bad_field": 1}
        # A malformed or unsigned message later does not break the subscription.
        publish(broker, enroll_topic(site, "m1", "mallory"), b"\xff" * 10, retain=False)
        publish(broker, *enrollment(site, "dave", unit_vectors(1)), retain=False)
        assert wait(lambda: any(r.person_id == "dave" for r in link.take_records()))
        assert link.rejected_counts() == {"bad_field": 1, "unsigned": 1}
    finally:
        link.stop()


def test_oversized_messages_are_never_delivered_to_the_device(broker):
    """The device announces an MQTT 5 maximum packet size, so the broker drops an oversized
    payload instead of handing it to the parser; the link stays up for valid records."""
    site = new_site()
    link = make_link(broker, site)
    link.start()
    try:
        assert link.wait_for_sync(10)
        publish(broker, enroll_topic(site, "m1", "huge"), b"[" * 2_000_000, retain=False)
        publish(broker, *enrollment(site, "dave", unit_vectors(1)), retain=False)
        assert wait(lambda: any(r.person_id == "dave" for r in link.take_records()))
        assert link.rejected_counts() == {} and link.connected
    finally:
        link.stop()


def test_events_published_while_the_broker_is_down_are_delivered_when_it_returns(broker, tmp_path):
    """paho keeps QoS 1 messages queued while disconnected and sends them on reconnect."""
    site = new_site()
    topic = event_topic(site, "door1")
    probe = Probe(broker, topic, client_id=f"consumer-{site}", persistent=True)
    link = make_link(broker, site)
    sink = make_sink(link, tmp_path, topic)
    link.start()
    try:
        assert wait(lambda: link.connected)
        broker.stop()
        assert wait(lambda: not link.connected)
        e = event(site)
        sink.emit(e)
        sink.poll()
        assert sink.pending == 1
        time.sleep(1.5)  # the link retries while the broker is down
        broker.start()
        assert probe.wait_for(lambda p: len(p.payloads(topic)) >= 1, timeout=15)
        assert wait(lambda: (sink.poll(), sink.pending)[1] == 0)
        delivered = probe.json(topic)
        assert [d["event_id"] for d in delivered] == [e["event_id"]]
    finally:
        link.stop()
        probe.close()


def leave_in_outbox(broker, site, folder) -> dict:
    """A previous run: the broker is down, an unlock is emitted, the process ends with it
    undelivered in the outbox. The broker stays down."""
    broker.stop()
    first = make_link(broker, site)
    sink = make_sink(first, folder, event_topic(site, "door1"))
    first.start()
    e = event(site)
    sink.emit(e)
    first.stop()
    sink.outbox.close()
    return e


def test_events_left_in_the_outbox_by_a_previous_run_are_delivered_after_restart(broker, tmp_path):
    site = new_site()
    topic = event_topic(site, "door1")
    probe = Probe(broker, topic, client_id=f"consumer-{site}", persistent=True)
    e = leave_in_outbox(broker, site, tmp_path)
    broker.start()
    second = make_link(broker, site)
    sink = make_sink(second, tmp_path, topic)
    assert sink.pending == 1
    second.start()
    try:
        assert wait(lambda: (sink.poll(), sink.pending)[1] == 0, timeout=15)
        assert probe.wait_for(lambda p: [d["event_id"] for d in p.json(topic)] == [e["event_id"]], timeout=15)
    finally:
        second.stop()
        probe.close()


def test_a_device_keeps_working_while_the_broker_is_unreachable(tmp_path):
    """Nothing listens on the port: start() returns at once, the sync wait gives up."""
    class Nowhere:
        host, port = "127.0.0.1", free_port()

    link = make_link(Nowhere, new_site())
    started = time.monotonic()
    link.start()
    assert not link.wait_for_sync(0.5)
    assert time.monotonic() - started < 3
    assert wait(lambda: link.last_error is not None, 5) and "cannot reach" in link.last_error
    link.stop()



# ---------------------------------------------------------------- events that must not arrive late

@contextmanager
def event_link(broker, tmp_path, unlock_max_age_s: float, via=None):
    """A connected link and event sink on a new site (through ``via``, a proxy, if given),
    and a consumer with a persistent session on its event topic."""
    site = new_site()
    topic = event_topic(site, "door1")
    consumer = Probe(broker, topic, client_id=f"consumer-{site}", persistent=True)
    link = make_link(via or broker, site)
    sink = make_sink(link, tmp_path, topic, unlock_max_age_s=unlock_max_age_s)
    link.start()
    try:
        assert wait(lambda: link.connected)
        yield SimpleNamespace(site=site, topic=topic, consumer=consumer, link=link, sink=sink)
    finally:
        link.stop()
        consumer.close()


def delivered_ids(e) -> list[str]:
    return [d["event_id"] for d in e.consumer.json(e.topic)]


def test_an_unlock_from_an_outage_longer_than_its_maximum_age_is_never_delivered(broker, tmp_path, caplog):
    with event_link(broker, tmp_path, unlock_max_age_s=1.0) as e:
        broker.stop()
        assert wait(lambda: not e.link.connected)
        late = event(e.site)
        e.sink.emit(late)               # queued in paho and kept in the outbox
        time.sleep(2.0)                 # the outage outlasts unlock_max_age_s
        broker.start()
        assert wait(lambda: (e.sink.poll(), e.sink.expired)[1] == 1, timeout=15)
        fresh = event(e.site, "bob")    # the link works again
        e.sink.emit(fresh)
        assert wait(lambda: fresh["event_id"] in delivered_ids(e))
        time.sleep(0.5)
        assert late["event_id"] not in delivered_ids(e), "a stale unlock was delivered"
        assert wait(lambda: (e.sink.poll(), len(e.sink.outbox))[1] == 0)
        assert f"unlock of {late['ts']} {late['event_id']} not sent" in caplog.text


def test_a_short_outage_delivers_every_event_once(broker, tmp_path):
    """At least once, and the door sends no event twice: after the reconnect the outbox
    re-sends only what paho does not hold already (QoS 1 may still duplicate a message whose
    acknowledgement was lost; consumers drop those by event_id)."""
    with event_link(broker, tmp_path, unlock_max_age_s=30.0) as e:
        sent = [event(e.site, "alice")]
        e.sink.emit(sent[0])
        assert wait(lambda: len(delivered_ids(e)) == 1)
        assert wait(lambda: (e.sink.poll(), e.sink.pending)[1] == 0)
        broker.stop()
        assert wait(lambda: not e.link.connected)
        sent += [event(e.site, "bob"), event(e.site, "carol")]
        for one in sent[1:]:
            e.sink.emit(one)
        broker.start()
        assert wait(lambda: len(delivered_ids(e)) >= 3, timeout=15)
        assert wait(lambda: (e.sink.poll(), e.sink.pending)[1] == 0)
        time.sleep(0.5)
        assert sorted(delivered_ids(e)) == sorted(one["event_id"] for one in sent) and e.sink.expired == 0


def test_an_unlock_left_in_the_outbox_by_a_previous_run_is_dropped_once_too_old(broker, tmp_path):
    """The door stopped with an unlock undelivered and restarted later than its maximum age."""
    site = new_site()
    topic = event_topic(site, "door1")
    consumer = Probe(broker, topic, client_id=f"consumer-{site}", persistent=True)
    leave_in_outbox(broker, site, tmp_path)
    time.sleep(1.5)

    broker.start()
    second = make_link(broker, site)
    sink = make_sink(second, tmp_path, topic, unlock_max_age_s=1.0)
    assert sink.pending == 1
    second.start()
    try:
        assert wait(lambda: (sink.poll(), sink.expired)[1] == 1, timeout=15)
        assert sink.pending == 0
        fresh = event(site, "bob")
        sink.emit(fresh)
        assert consumer.wait_for(lambda p: [e["event_id"] for e in p.json(topic)] == [fresh["event_id"]])
    finally:
        second.stop()
        consumer.close()


class FreezableProxy:
    """A TCP relay to the broker that can go silent without closing anything (a cable pulled
    somewhere between door and broker: the door believes it is still connected), and then
    cut every connection."""

    def __init__(self, broker):
        import socket
        self.upstream = (broker.host, broker.port)
        self.frozen = False
        self._conns: list = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.host, self.port = "127.0.0.1", self._server.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        import socket
        while True:
            try:
                client, _ = self._server.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, source, target):
        try:
            while data := source.recv(65536):
                if not self.frozen:  # frozen: swallowed, as by a dead link
                    target.sendall(data)
        except OSError:
            pass

    def cut(self):
        for conn in self._conns:
            try:
                conn.shutdown(2)
                conn.close()
            except OSError:
                pass
        self._conns = []
        self.frozen = False

    def close(self):
        self.cut()
        self._server.close()


def test_an_unlock_in_flight_when_the_link_silently_died_is_not_sent_after_the_reconnect(broker, tmp_path):
    """paho re-sends unacknowledged messages after a reconnect, which may be much later.
    The link takes the expired ones out of paho's queue before it can."""
    proxy = FreezableProxy(broker)
    try:
        with event_link(broker, tmp_path, unlock_max_age_s=1.0, via=proxy) as e:
            proxy.frozen = True
            late = event(e.site)
            e.sink.emit(late)           # paho sends it into the void and waits for a PUBACK
            time.sleep(2.0)
            assert e.link.connected, "the door has not noticed"
            proxy.cut()                 # the connection finally drops; paho reconnects and would re-send
            assert wait(lambda: (e.sink.poll(), e.sink.expired)[1] == 1, timeout=15)
            fresh = event(e.site, "bob")
            e.sink.emit(fresh)
            assert wait(lambda: delivered_ids(e) == [fresh["event_id"]])
            time.sleep(0.5)
            assert delivered_ids(e) == [fresh["event_id"]]
            assert wait(lambda: (e.sink.poll(), len(e.sink.outbox))[1] == 0)
    finally:
        proxy.close()


def test_events_carry_their_remaining_lifetime_as_mqtt_message_expiry(broker, tmp_path):
    with event_link(broker, tmp_path, unlock_max_age_s=5.0) as e:
        seen = []
        client = mqtt_v5_client(broker, e.topic, seen)
        try:
            e.sink.emit(event(e.site))
            assert wait(lambda: len(seen) == 1)
            assert 1 <= seen[0] <= 5
        finally:
            client.disconnect()
            client.loop_stop()


def mqtt_v5_client(broker, topic, seen):
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion
    client = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    subscribed = threading.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    client.on_message = lambda c, u, m: seen.append(getattr(m.properties, "MessageExpiryInterval", None))
    client.connect(broker.host, broker.port)
    client.subscribe(topic, qos=1)
    client.loop_start()
    assert subscribed.wait(5)
    return client
