# The image of every helpdesk service in compose.yaml: `helpdesk <command>`.

# Build the wheel (templates/, mail/ and migrations/ are packed into it, see pyproject.toml).
FROM python:3.11-slim AS wheel
WORKDIR /src
COPY pyproject.toml README.md alembic.ini ./
COPY helpdesk ./helpdesk
COPY templates ./templates
COPY mail ./mail
COPY migrations ./migrations
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HELPDESK_DATA_DIR=/data
COPY --from=wheel /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# Run as an unprivileged user that owns only the data directory (a named volume in compose).
RUN useradd --system --uid 10001 --home-dir /data --shell /usr/sbin/nologin helpdesk \
    && mkdir -p /data && chown helpdesk:helpdesk /data
USER helpdesk
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8000
ENTRYPOINT ["helpdesk"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
