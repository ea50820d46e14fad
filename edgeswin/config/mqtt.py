"""The `mqtt:` section: the broker connection, TLS, credentials and topics."""

from __future__ import annotations

from pydantic import (
    Field,
    ValidationInfo,
    field_validator,
)

from .fields import ExistingFile, _earlier, _secret_readable, _Strict, mqtt_string_problem, topic_problem


class TlsConfig(_Strict):
    ca_file: ExistingFile = Field(description="CA certificate (PEM) that signed the broker's "
                                              "certificate.")
    cert_file: ExistingFile | None = Field(None, description="Client certificate (PEM), if the "
                                                             "broker wants one.")
    key_file: ExistingFile | None = Field(None, validate_default=True,
                                          description="Client private key (PEM).")
    check_hostname: bool = Field(True, description="Check the broker's name against its "
                                                   "certificate. Turn off only for testing.")

    @field_validator("key_file")
    @classmethod
    def _pair(cls, value: str | None, info: ValidationInfo) -> str | None:
        earlier = _earlier(info, "cert_file")
        if earlier is not None and (earlier[0] is None) != (value is None):
            raise ValueError("cert_file and key_file go together")
        return value


class MqttConfig(_Strict):
    host: str = Field("127.0.0.1", min_length=1, max_length=253, pattern=r"^[^\s\x00/]+$",
                      description="Broker host name or address.")
    port: int = Field(1883, ge=1, le=65535, description="Broker TCP port.")
    topic_root: str | None = Field(None, description="Topic prefix; default edgeswin/<device_id>.")
    client_id: str | None = Field(None, description="MQTT client id; default edgeswin-<device_id>.")
    qos: int = Field(1, ge=0, le=2, description="QoS of classifications and state messages.")
    keepalive_s: int = Field(30, ge=5, le=3600, description="MQTT keepalive interval.")
    username: str | None = Field(None, description="Broker user name.")
    password_file: ExistingFile | None = Field(None, description="File holding the broker "
                                               "password (needs username).")
    password_env: str | None = Field(None, description="Environment variable with the password "
                                     "(needs username); `check` reads it in its own "
                                     "environment, as the unit's ExecStartPre does in the "
                                     "service's.")
    tls: TlsConfig | None = Field(None, description="TLS to the broker (port 8883 usually).")
    outbox_max_mb: float = Field(64.0, ge=0, le=1_000_000, description="Durable outbox "
                                 "(SQLite in state_dir) for QoS >= 1 messages while the broker "
                                 "is away; the oldest are dropped beyond this size. 0 = memory "
                                 "only.")
    reconnect_max_s: float = Field(4.0, ge=1, le=300, description="Longest wait between two "
                                   "connection attempts (about 1 s, doubling up to this; each "
                                   "daemon draws its own first wait and cap once).")

    @field_validator("topic_root")
    @classmethod
    def _topic_root(cls, value: str | None) -> str | None:
        if value is not None and (problem := topic_problem(value, "topic_root")):
            raise ValueError(problem)
        return value

    @field_validator("password_file", "password_env")
    @classmethod
    def _password(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if info.field_name == "password_env" and info.data.get("password_file"):
            raise ValueError("give the password one way: password_file or password_env")
        if _earlier(info, "username") == (None,):
            raise ValueError(f"{info.field_name} without username: the broker is sent no "
                             "password without a user name; set mqtt.username")
        _secret_readable("mqtt", **{info.field_name.removeprefix("password_"): value})
        return value

    @field_validator("client_id", "username")
    @classmethod
    def _mqtt_string(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and (problem := mqtt_string_problem(value, info.field_name)):
            raise ValueError(problem)
        if info.field_name == "client_id" and value == "":
            raise ValueError("client_id is empty (leave it out for edgeswin-<device_id>)")
        return value
