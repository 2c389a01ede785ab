"""The daemon never declares anything on the broker: the platform owns the topology.

* test_publish_only_user: registration hands out a broker user that may write to every
  exchange of the vhost but configure nothing and read nothing (RabbitMQ permissions
  configure "^$", write ".*", read "^$"). Any exchange.declare or queue.declare (and any
  consume) from the daemon would close its channel with ACCESS_REFUSED; the run imports
  all 723 objects, equal to the reference split, and the work completes.
"""

import sys
import uuid

import pika

from daemon_scenarios import (RUN_STORED, TOTAL, assert_no_error_logs, assert_reference_run,
                              assert_work_success, check, eq, run_tests, scenario, shared_broker)


def declare_refused(broker, user, password):
    """Whether an exchange.declare by user is refused (ACCESS_REFUSED)."""
    params = pika.ConnectionParameters(host="127.0.0.1", port=broker.port,
                                       credentials=pika.PlainCredentials(user, password))
    conn = pika.BlockingConnection(params)
    try:
        ch = conn.channel()
        try:
            ch.exchange_declare("ods-no-declare-probe", exchange_type="direct", durable=False,
                                auto_delete=True)
            return False
        except pika.exceptions.ChannelClosedByBroker as e:
            return e.reply_code == 403
    finally:
        if conn.is_open:
            conn.close()


def test_publish_only_user():
    broker = shared_broker()
    user, password = "ods-publish-only-%s" % uuid.uuid4().hex[:8], uuid.uuid4().hex
    broker.ctl("add_user", user, password)
    try:
        broker.ctl("set_permissions", "-p", "/", user, "^$", ".*", "^$")
        check(declare_refused(broker, user, password),
              "the permissions bite: this user's exchange.declare is refused")
        with scenario(broker=broker, connection={"user": user, "pass": password}) as s:
            d = s.daemon(CONNECTOR_RUN_AND_TERMINATE="true")
            eq(d.wait_exit(90), 0, "run-and-terminate exit status with a publish-only user")
            d.wait_for_log(RUN_STORED, 1)
            check(not d.find_logs(r"ACCESS_REFUSED|access refused"), "nothing was refused")
            assert_no_error_logs(d)
            w = s.wait_work_done(0, 60)
            assert_work_success(s, w)
            eq(w["import_expected_number"], TOTAL, "expectations")
            assert_reference_run(s, w["id"])
            s.platform.assert_no_violations()
    finally:
        broker.ctl("delete_user", user, check=False)


if __name__ == "__main__":
    sys.exit(run_tests(globals()))
