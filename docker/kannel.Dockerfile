# Kannel (Debian's package): bearerbox and smsbox in one image; the compose file runs each.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends kannel \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/log/kannel /var/spool/kannel && chown kannel /var/log/kannel /var/spool/kannel
USER kannel
COPY kannel/kannel.conf /etc/kannel/kannel.conf
EXPOSE 13013
COPY kannel/start.sh /usr/local/bin/kannel-start
