"""The original service's load test: a crowd on the old REST paths.

Weights as in the FastAPI service's Locust test: reserve 4, status 3, health 2,
process_queue 1, admin reset 1. Run against a default `npm start`:

    ADMIN_TOKEN=<the token> locust -f bench/locustfile.py --headless -u 50 -r 50 -t 60s --host http://localhost:8000

Every user comes from this one machine (one address), as in the old test.
"""
import os
import uuid

from locust import HttpUser, between, task

ADMIN = {"x-token": os.environ.get("ADMIN_TOKEN", "")}


class QueueUser(HttpUser):
    wait_time = between(0.05, 0.2)

    def on_start(self):
        self.user_id = f"locust-{uuid.uuid4()}"

    @task(4)
    def reserve(self):
        self.client.post("/reserve", json={"user_id": self.user_id})

    @task(3)
    def status(self):
        self.client.get(f"/status/{self.user_id}", name="/status/[user_id]")

    @task(2)
    def health(self):
        self.client.get("/health")

    @task(1)
    def process_queue(self):
        self.client.post("/process_queue", headers=ADMIN)

    @task(1)
    def reset(self):
        self.client.post("/admin/reset", headers=ADMIN)
