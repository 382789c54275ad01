# Asterisk 22 from Debian sid (as scripts/asterisk-root.sh builds it for development), run as the
# asterisk user. Its configuration is rendered by `hotline asterisk render` into the volume
# mounted at /etc/asterisk-hotline (the compose file's asterisk-*-config services).
FROM debian:sid-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends asterisk asterisk-modules \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/asterisk-hotline && chown asterisk:asterisk /var/lib/asterisk-hotline
USER asterisk
EXPOSE 5060/udp 5038
ENTRYPOINT ["asterisk", "-f", "-C", "/etc/asterisk-hotline/asterisk.conf"]
