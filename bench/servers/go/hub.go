// The Go peer: an SSE hub on net/http written the idiomatic way, standard library only. Every
// subscriber is a goroutine with a buffered channel; POST /publish frames the event once and
// sends the same bytes to every channel; each subscriber writes what it receives and flushes
// once per event. It takes the same POST /publish JSON body as the other peers and puts an
// increasing id on every event.
//
// The runner builds it with Debian's golang-go into a temporary folder (no module, no network)
// and drives it over standard input and output, as it drives the Node peers over IPC (see
// ../control.ts): it prints "listening <port>" once it listens, answers a "gc" line with "gc"
// once it has returned freed memory to the system (so RSS readings measure what is kept), and
// exits when its standard input closes (the runner went away).
package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime/debug"
	"strconv"
	"sync"
	"time"
)

// Events queued per subscriber. When a queue is full, the publisher waits for that subscriber
// (backpressure) rather than drop events or the client: nothing is lost, and a client that
// stops reading holds publishing up until its connection fails. (Disconnecting it instead
// loses the events of every subscriber that is merely behind under a burst: with 16
// publishers and 1,000 subscribers, 60 % of them.)
const queueLength = 256

type subscriber struct {
	events chan []byte
	// Closed when the handler returns, so a publisher waiting on a full queue gives up.
	gone chan struct{}
}

type hub struct {
	mu          sync.Mutex
	subscribers map[*subscriber]struct{}
	lastID      uint64
}

func (h *hub) stream(heartbeat time.Duration) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		flusher, ok := w.(http.Flusher)
		if !ok {
			http.Error(w, "streaming unsupported", http.StatusInternalServerError)
			return
		}
		header := w.Header()
		header.Set("Content-Type", "text/event-stream")
		header.Set("Cache-Control", "no-cache")
		header.Set("Connection", "keep-alive")
		w.WriteHeader(http.StatusOK)
		io.WriteString(w, "retry: 3000\n\n")
		flusher.Flush()

		me := &subscriber{events: make(chan []byte, queueLength), gone: make(chan struct{})}
		h.mu.Lock()
		h.subscribers[me] = struct{}{}
		h.mu.Unlock()
		defer func() {
			close(me.gone)
			h.mu.Lock()
			delete(h.subscribers, me)
			h.mu.Unlock()
		}()

		ticker := time.NewTicker(heartbeat)
		defer ticker.Stop()
		for {
			select {
			case frame := <-me.events:
				if _, err := w.Write(frame); err != nil {
					return
				}
				flusher.Flush()
			case <-ticker.C:
				if _, err := io.WriteString(w, ": heartbeat\n\n"); err != nil {
					return
				}
				flusher.Flush()
			case <-r.Context().Done():
				return
			}
		}
	}
}

func (h *hub) publish(w http.ResponseWriter, r *http.Request) {
	var body struct {
		Channel string  `json:"channel"`
		Data    *string `json:"data"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil || body.Data == nil {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"bad body"}`)
		return
	}
	h.mu.Lock()
	h.lastID++
	id := strconv.FormatUint(h.lastID, 10)
	frame := []byte("id: " + id + "\ndata: " + *body.Data + "\n\n")
	for sub := range h.subscribers {
		select {
		case sub.events <- frame:
		case <-sub.gone:
		}
	}
	h.mu.Unlock()
	reply := `{"id":"` + id + `"}`
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(reply)))
	w.WriteHeader(http.StatusAccepted)
	io.WriteString(w, reply)
}

func main() {
	heartbeat := 15 * time.Second
	if ms, err := strconv.Atoi(os.Getenv("HEARTBEAT_MS")); err == nil && ms > 0 {
		heartbeat = time.Duration(ms) * time.Millisecond
	}
	h := &hub{subscribers: make(map[*subscriber]struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("/stream", h.stream(heartbeat))
	mux.HandleFunc("/publish", func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			http.NotFound(w, r)
			return
		}
		h.publish(w, r)
	})
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("listening %d\n", listener.Addr().(*net.TCPAddr).Port)
	go func() {
		commands := bufio.NewScanner(os.Stdin)
		for commands.Scan() {
			if commands.Text() == "gc" {
				debug.FreeOSMemory()
				fmt.Println("gc")
			}
		}
		os.Exit(0)
	}()
	http.Serve(listener, mux)
}
