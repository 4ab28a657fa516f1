/**
 * The nchan peer: nginx with the nchan module (C), subscribers on `GET /stream?channel=…` as
 * EventSource, the way nchan's documentation sets it up. Debian packages both
 * (`apt-get install nginx libnginx-mod-nchan`); the runner writes this configuration into a
 * temporary folder and runs nginx from there as one process (`master_process off`, so the
 * process the runner pins and measures is the one that holds the connections), in the
 * foreground (`daemon off`), with nothing written outside that folder.
 *
 * Only W1 (idle streams: RSS and connects/s) and W4 (20,000 streams held with heartbeats) run
 * against it. nchan's publisher API is its own (the body is the data, ids are
 * `<time>:<index>`, not numbers), so the fan-out and latency workloads, whose loaders check
 * that numeric ids grow and read a send time from a JSON body, are not comparable without a
 * translation layer that would then be measured too.
 */

/** Where Debian's packages put nginx and the nchan module. */
export const NGINX = '/usr/sbin/nginx';
export const NCHAN_MODULE = '/usr/lib/nginx/modules/ngx_nchan_module.so';

export interface NchanConfigOptions {
  /** The temporary folder nginx runs in (`-p`): pid, error log and temp paths go there. */
  folder: string;
  port: number;
  /** How often each stream gets a heartbeat comment (nchan counts in whole seconds). */
  heartbeatMs: number;
}

export function nchanConfig({ folder, port, heartbeatMs }: NchanConfigOptions): string {
  return `load_module ${NCHAN_MODULE};
daemon off;
master_process off;
worker_processes 1;
pid ${folder}/nginx.pid;
error_log ${folder}/error.log warn;
# Each stream is a connection; the runner has raised the open-file limit this process inherits.
events { worker_connections 65536; }
http {
  # Ours runs without a request log in the bench too (servers/ours.ts).
  access_log off;
  client_body_temp_path ${folder}/body;
  proxy_temp_path ${folder}/proxy;
  fastcgi_temp_path ${folder}/fastcgi;
  uwsgi_temp_path ${folder}/uwsgi;
  scgi_temp_path ${folder}/scgi;
  server {
    listen 127.0.0.1:${port};
    location = /stream {
      nchan_subscriber eventsource;
      nchan_channel_id $arg_channel;
      # A comment line every interval, as ours and the Go peer send (HEARTBEAT_MS).
      nchan_eventsource_ping_interval ${Math.max(1, Math.round(heartbeatMs / 1000))};
      nchan_eventsource_ping_event "";
      nchan_eventsource_ping_data "";
      nchan_eventsource_ping_comment "heartbeat";
    }
    location = /publish {
      nchan_publisher;
      nchan_channel_id $arg_channel;
    }
  }
}
`;
}
