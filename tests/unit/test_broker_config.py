"""What opqueue asks of each broker (workers/celery_app.py `broker_config`)."""

from core.config import Settings
from workers.celery_app import OpqueueCelery


def test_rabbitmq_gets_a_quorum_queue_with_a_delivery_limit_and_publisher_confirms() -> None:
    settings = Settings(broker_url="amqp://u:p@127.0.0.1:5672/v", queue="jobs",
                        broker_delivery_limit=7)
    assert settings.rabbitmq_broker
    assert not settings.redis_broker
    celery = OpqueueCelery(settings)
    queue = celery.amqp.default_queue
    assert queue.name == "jobs"
    assert queue.durable
    assert queue.queue_arguments == {"x-queue-type": "quorum", "x-delivery-limit": 7}
    assert queue.exchange.type == "topic"  # what Celery's native delayed delivery needs
    assert celery.conf.broker_transport_options == {"confirm_publish": True}


def test_a_redis_broker_keeps_one_list_per_queue_under_the_key_prefix() -> None:
    settings = Settings(redis_url="redis://127.0.0.1:6379/3", key_prefix="k", queue="jobs")
    assert settings.redis_broker
    assert not settings.rabbitmq_broker
    celery = OpqueueCelery(settings)
    assert celery.amqp.default_queue.queue_arguments is None
    options = celery.conf.broker_transport_options
    assert options["global_keyprefix"] == "k:broker:"
    assert options["priority_steps"] == [0]
