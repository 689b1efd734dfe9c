import redis

from lathe_common.embedded_redis import redis_answers, start_embedded_redis


def test_it_starts_a_private_redis_that_keeps_its_data_on_disk(tmp_path):
    process, url = start_embedded_redis(tmp_path / "redis")
    try:
        assert redis_answers(url)
        client = redis.Redis.from_url(url)
        client.set("queued", "job-1")
        assert client.get("queued") == b"job-1"
        assert client.config_get("appendonly")["appendonly"] == "yes"
    finally:
        process.terminate()
        process.wait(timeout=10)
    assert not redis_answers(url)
