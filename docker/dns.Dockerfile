# The SRV records that list the hotline serve instances (_agi._tcp.agi.hotline.internal), for
# Asterisk's hagi://. Debian's dnsmasq; the records are in dns/hotline.conf.
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dnsmasq-base \
    && rm -rf /var/lib/apt/lists/*
COPY dns/hotline.conf /etc/dnsmasq.d/hotline.conf
ENTRYPOINT ["dnsmasq", "--keep-in-foreground", "--conf-file=/etc/dnsmasq.d/hotline.conf"]
