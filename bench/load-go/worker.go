// The load generator in Go: the same worker as ../load-worker.ts (subscribers on raw sockets,
// chunked decoding, the event-stream parser, ids checked, heartbeats counted, latency from a
// `t=<µs>` prefix; publishers on keep-alive sockets), driven by the runner over the same IPC
// channel. It exists because the Node worker costs about 7.5 µs of CPU per event received, so at
// 10,000 subscribers it saturates its core and the bench measures the client, not the server;
// a goroutine per socket here costs about 5 µs (most of either is the kernel's loopback read). Standard library only; the runner
// builds it like the Go peer (../server-process.ts).
//
// IPC: Node's `ipc` stdio with JSON serialisation is one JSON document per line on the file
// descriptor in NODE_CHANNEL_FD, so a Go child speaks it with a line reader and a line writer.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"
)

// ---------------------------------------------------------------------------------------------
// Clock: microseconds on CLOCK_MONOTONIC, the clock the publishers stamp events with and the
// Node side reads with process.hrtime, so latency compares across processes.
// ---------------------------------------------------------------------------------------------

var monotonicStart int64
var goStart time.Time

func init() {
	var ts syscall.Timespec
	goStart = time.Now()
	// CLOCK_MONOTONIC is clock id 1 on Linux; Go's own monotonic readings use the same clock.
	syscall.Syscall(syscall.SYS_CLOCK_GETTIME, 1, uintptr(unsafe.Pointer(&ts)), 0)
	monotonicStart = ts.Sec*1_000_000 + ts.Nsec/1000
}

func nowMicros() int64 {
	return monotonicStart + time.Since(goStart).Microseconds()
}

// ---------------------------------------------------------------------------------------------
// Latency histogram: fixed 10 µs buckets up to 10 s, as ../histogram.ts, so snapshots merge.
// ---------------------------------------------------------------------------------------------

const bucketMicros = 10
const buckets = 1_000_000

type histogram struct {
	counts   [buckets]uint32
	count    int64
	maxMicro int64
}

func (h *histogram) record(micros int64) {
	if micros < 0 {
		micros = 0
	}
	index := micros / bucketMicros
	if index >= buckets {
		index = buckets - 1
	}
	h.counts[index]++
	h.count++
	if micros > h.maxMicro {
		h.maxMicro = micros
	}
}

// ---------------------------------------------------------------------------------------------
// One subscriber
// ---------------------------------------------------------------------------------------------

const (
	stateHeaders = iota
	stateChunkSize
	stateChunkData
	stateChunkEnd
	stateIdentity
	stateDone
)

type client struct {
	mu sync.Mutex
	// What the benchmark counts (under mu).
	events      int64
	outOfOrder  int64
	comments    int64
	lastEventID float64
	lastEventAt int64
	err         string

	conn      net.Conn
	latency   bool
	state     int
	head      []byte
	sizeLine  []byte
	chunkLeft int
	carry     []byte
	skipLF    bool
	hasData   bool
	idValue   float64
	sentAt    int64
}

func (c *client) fail(message string) {
	c.mu.Lock()
	if c.err == "" {
		c.err = message
	}
	c.mu.Unlock()
}

// run connects, sends the request, and reads until the connection ends; ready gets nil once
// the response headers say event stream, or the error.
func (c *client) run(host string, port int, path, localAddress string, ready chan<- error) {
	dialer := net.Dialer{Timeout: 30 * time.Second}
	if localAddress != "" {
		dialer.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localAddress)}
	}
	conn, err := dialer.Dial("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		c.fail(err.Error())
		ready <- err
		return
	}
	c.mu.Lock()
	c.conn = conn
	c.mu.Unlock()
	conn.(*net.TCPConn).SetNoDelay(true)
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s:%d\r\nAccept: text/event-stream\r\n\r\n", path, host, port)
	buffer := make([]byte, 8*1024)
	c.lastEventID = -1
	c.idValue = -1
	signalled := false
	for {
		n, err := conn.Read(buffer)
		if n > 0 {
			now := nowMicros()
			c.mu.Lock()
			wasHeaders := c.state == stateHeaders
			c.onData(buffer[:n], now)
			if wasHeaders && c.state != stateHeaders && !signalled {
				signalled = true
				if c.err == "" {
					ready <- nil
				} else {
					ready <- fmt.Errorf("%s", c.err)
				}
			}
			c.mu.Unlock()
		}
		if err != nil {
			c.fail("connection closed")
			if !signalled {
				ready <- fmt.Errorf("connection closed")
			}
			return
		}
	}
}

func (c *client) onData(chunk []byte, now int64) {
	position := 0
	for position < len(chunk) {
		switch c.state {
		case stateHeaders:
			c.head = append(c.head, chunk[position:]...)
			end := bytes.Index(c.head, []byte("\r\n\r\n"))
			if end == -1 {
				return
			}
			rest := len(c.head) - (end + 4)
			c.startBody(string(c.head[:end]))
			c.head = nil
			position = len(chunk) - rest
		case stateChunkSize:
			lineEnd := bytes.IndexByte(chunk[position:], '\n')
			if lineEnd == -1 {
				c.sizeLine = append(c.sizeLine, chunk[position:]...)
				return
			}
			c.sizeLine = append(c.sizeLine, chunk[position:position+lineEnd]...)
			position += lineEnd + 1
			// Chunk extensions (`;name=value`) are allowed and ignored.
			text := strings.TrimSpace(strings.SplitN(string(c.sizeLine), ";", 2)[0])
			c.sizeLine = c.sizeLine[:0]
			size, err := strconv.ParseInt(text, 16, 64)
			if err != nil || size < 0 {
				c.err = "bad chunk size"
				c.state = stateDone
				c.conn.Close()
				return
			}
			if size == 0 {
				c.state = stateDone
				return
			}
			c.chunkLeft = int(size)
			c.state = stateChunkData
		case stateChunkData:
			end := position + c.chunkLeft
			if end > len(chunk) {
				end = len(chunk)
			}
			c.parse(chunk[position:end], now)
			c.chunkLeft -= end - position
			position = end
			if c.chunkLeft == 0 {
				c.state = stateChunkEnd
				c.chunkLeft = 2
			}
		case stateChunkEnd:
			// The CRLF after each chunk's data.
			take := len(chunk) - position
			if take > c.chunkLeft {
				take = c.chunkLeft
			}
			position += take
			c.chunkLeft -= take
			if c.chunkLeft == 0 {
				c.state = stateChunkSize
			}
		case stateIdentity:
			c.parse(chunk[position:], now)
			return
		default:
			return
		}
	}
}

func (c *client) startBody(head string) {
	lines := strings.Split(head, "\r\n")
	fields := strings.Fields(lines[0])
	status := ""
	if len(fields) > 1 {
		status = fields[1]
	}
	headers := map[string]string{}
	for _, line := range lines[1:] {
		colon := strings.IndexByte(line, ':')
		if colon == -1 {
			continue
		}
		headers[strings.ToLower(strings.TrimSpace(line[:colon]))] = strings.ToLower(strings.TrimSpace(line[colon+1:]))
	}
	if status != "200" || !strings.HasPrefix(headers["content-type"], "text/event-stream") {
		c.err = "unexpected response: " + lines[0]
		c.state = stateDone
		c.conn.Close()
		return
	}
	if strings.Contains(headers["transfer-encoding"], "chunked") {
		c.state = stateChunkSize
	} else {
		c.state = stateIdentity
	}
}

// parse feeds stream bytes to the line splitter: CR, LF and CRLF all end a line, even when a
// CRLF is split across two reads.
func (c *client) parse(data []byte, now int64) {
	if len(data) == 0 {
		return
	}
	if c.skipLF {
		c.skipLF = false
		if data[0] == '\n' {
			data = data[1:]
		}
	}
	if len(c.carry) > 0 {
		data = append(c.carry, data...)
		c.carry = nil
	}
	hasCR := bytes.IndexByte(data, '\r') != -1
	lineStart := 0
	for {
		lineEnd := bytes.IndexByte(data[lineStart:], '\n')
		if lineEnd != -1 {
			lineEnd += lineStart
		}
		next := lineEnd + 1
		if hasCR {
			cr := bytes.IndexByte(data[lineStart:], '\r')
			if cr != -1 {
				cr += lineStart
				if lineEnd == -1 || cr < lineEnd {
					lineEnd = cr
					if cr+1 == len(data) {
						c.skipLF = true
						next = cr + 1
					} else if data[cr+1] == '\n' {
						next = cr + 2
					} else {
						next = cr + 1
					}
				}
			}
		}
		if lineEnd == -1 {
			break
		}
		c.line(data[lineStart:lineEnd], now)
		lineStart = next
	}
	if lineStart < len(data) {
		c.carry = append([]byte(nil), data[lineStart:]...)
	}
}

func (c *client) line(line []byte, now int64) {
	if len(line) == 0 {
		c.dispatch(now)
		return
	}
	if line[0] == ':' {
		c.comments++
		return
	}
	colon := bytes.IndexByte(line, ':')
	if colon == -1 {
		colon = len(line)
	}
	value := colon + 1
	if value < len(line) && line[value] == ' ' {
		value++
	}
	if value > len(line) {
		value = len(line)
	}
	name := line[:colon]
	switch string(name) {
	case "data":
		c.hasData = true
		// `t=<µs>` at the start of the payload: the publisher's send time.
		if c.latency && len(line) >= value+2 && line[value] == 't' && line[value+1] == '=' {
			c.sentAt = leadingNumber(line[value+2:])
		}
	case "id":
		// The browser ignores an id containing NUL; ids here are numbers.
		if bytes.IndexByte(line[value:], 0) == -1 {
			c.idValue = digits(line[value:])
		}
	}
}

func (c *client) dispatch(now int64) {
	if !c.hasData {
		return
	}
	c.hasData = false
	c.events++
	if !(c.idValue > c.lastEventID) {
		c.outOfOrder++
	} else {
		c.lastEventID = c.idValue
	}
	c.lastEventAt = now
	if c.latency && c.sentAt >= 0 {
		latencyMu.Lock()
		latencyHistogram.record(now - c.sentAt)
		latencyMu.Unlock()
		c.sentAt = -1
	}
}

// digits is the decimal number in b, or -2 (never greater than a real id) if anything else is.
func digits(b []byte) float64 {
	if len(b) == 0 {
		return -2
	}
	value := 0.0
	for _, character := range b {
		if character < '0' || character > '9' {
			return -2
		}
		value = value*10 + float64(character-'0')
	}
	return value
}

func leadingNumber(b []byte) int64 {
	var value int64
	index := 0
	for ; index < len(b) && b[index] >= '0' && b[index] <= '9'; index++ {
		value = value*10 + int64(b[index]-'0')
	}
	if index == 0 {
		return -1
	}
	return value
}

// ---------------------------------------------------------------------------------------------
// Publishing: keep-alive sockets, one request in flight each, as ../publisher.ts.
// ---------------------------------------------------------------------------------------------

type publishOptions struct {
	Host          string  `json:"host"`
	Port          int     `json:"port"`
	Channel       string  `json:"channel"`
	Count         int     `json:"count"`
	Concurrency   int     `json:"concurrency"`
	RatePerSecond float64 `json:"ratePerSecond"`
}

// eventData is ~95 bytes: with `id: <13 digits>\n`, `data: ` and the blank line, a ~120 byte frame.
func eventData() string {
	time := "t=" + strconv.FormatInt(nowMicros(), 10) + " "
	return time + strings.Repeat("x", 95-len(time))
}

func publish(options publishOptions) map[string]interface{} {
	startedAt := nowMicros()
	var next, published, failed int64
	interval := 0.0
	if options.RatePerSecond > 0 {
		interval = 1e6 / options.RatePerSecond
	}
	var wait sync.WaitGroup
	var firstError atomic.Value
	for worker := 0; worker < options.Concurrency; worker++ {
		wait.Add(1)
		go func() {
			defer wait.Done()
			conn, err := net.Dial("tcp", net.JoinHostPort(options.Host, strconv.Itoa(options.Port)))
			if err != nil {
				firstError.Store(err.Error())
				return
			}
			defer conn.Close()
			conn.(*net.TCPConn).SetNoDelay(true)
			reader := bufio.NewReader(conn)
			for {
				index := atomic.AddInt64(&next, 1) - 1
				if index >= int64(options.Count) {
					return
				}
				if interval > 0 {
					due := float64(startedAt) + float64(index)*interval
					if wait := due - float64(nowMicros()); wait > 0 {
						time.Sleep(time.Duration(wait) * time.Microsecond)
					}
				}
				body, _ := json.Marshal(map[string]string{"channel": options.Channel, "data": eventData()})
				request := fmt.Sprintf("POST /publish HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s", options.Host, options.Port, len(body), body)
				if _, err := conn.Write([]byte(request)); err != nil {
					firstError.Store(err.Error())
					atomic.AddInt64(&failed, 1)
					return
				}
				status, err := readResponse(reader)
				if err != nil {
					firstError.Store(err.Error())
					atomic.AddInt64(&failed, 1)
					return
				}
				if status == 202 || status == 200 {
					atomic.AddInt64(&published, 1)
				} else {
					atomic.AddInt64(&failed, 1)
				}
			}
		}()
	}
	wait.Wait()
	result := map[string]interface{}{"type": "published", "published": published, "failed": failed, "startedAt": startedAt, "finishedAt": nowMicros()}
	if message, ok := firstError.Load().(string); ok {
		result["error"] = message
	}
	return result
}

// readResponse reads one response with a Content-Length body and returns its status.
func readResponse(reader *bufio.Reader) (int, error) {
	statusLine, err := reader.ReadString('\n')
	if err != nil {
		return 0, err
	}
	fields := strings.Fields(statusLine)
	if len(fields) < 2 {
		return 0, fmt.Errorf("bad status line %q", statusLine)
	}
	status, _ := strconv.Atoi(fields[1])
	length := 0
	for {
		line, err := reader.ReadString('\n')
		if err != nil {
			return 0, err
		}
		line = strings.TrimRight(line, "\r\n")
		if line == "" {
			break
		}
		if colon := strings.IndexByte(line, ':'); colon != -1 && strings.EqualFold(strings.TrimSpace(line[:colon]), "content-length") {
			length, _ = strconv.Atoi(strings.TrimSpace(line[colon+1:]))
		}
	}
	if _, err := reader.Discard(length); err != nil {
		return 0, err
	}
	return status, nil
}

// ---------------------------------------------------------------------------------------------
// The worker: commands from the runner, as ../load-worker.ts takes them.
// ---------------------------------------------------------------------------------------------

var (
	clientsMu        sync.Mutex
	clients          []*client
	latencyMu        sync.Mutex
	latencyHistogram = new(histogram)
	ipcOut           *os.File
	ipcMu            sync.Mutex
)

type command struct {
	Type           string         `json:"type"`
	Host           string         `json:"host"`
	Port           int            `json:"port"`
	Path           string         `json:"path"`
	Count          int            `json:"count"`
	LocalAddresses []string       `json:"localAddresses"`
	Latency        bool           `json:"latency"`
	Expect         int64          `json:"expect"`
	Options        publishOptions `json:"options"`
}

// How many connects a worker keeps in flight: enough for speed, few enough for the SYN queue.
const connectsInFlight = 128

func reply(message interface{}) {
	text, _ := json.Marshal(message)
	ipcMu.Lock()
	ipcOut.Write(append(text, '\n'))
	ipcMu.Unlock()
}

func connectAll(command command) {
	started := time.Now()
	var next, failed int64
	var wait sync.WaitGroup
	for opener := 0; opener < connectsInFlight; opener++ {
		wait.Add(1)
		go func() {
			defer wait.Done()
			for {
				index := atomic.AddInt64(&next, 1) - 1
				if index >= int64(command.Count) {
					return
				}
				c := &client{latency: command.Latency, sentAt: -1}
				clientsMu.Lock()
				clients = append(clients, c)
				clientsMu.Unlock()
				local := ""
				if len(command.LocalAddresses) > 0 {
					local = command.LocalAddresses[int(index)%len(command.LocalAddresses)]
				}
				ready := make(chan error, 1)
				go c.run(command.Host, command.Port, command.Path, local, ready)
				if err := <-ready; err != nil {
					atomic.AddInt64(&failed, 1)
				}
			}
		}()
	}
	wait.Wait()
	reply(map[string]interface{}{"type": "connected", "failed": failed, "ms": float64(time.Since(started).Microseconds()) / 1000})
}

func cpuMicros() int64 {
	var usage syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &usage)
	return usage.Utime.Sec*1_000_000 + usage.Utime.Usec + usage.Stime.Sec*1_000_000 + usage.Stime.Usec
}

func stats(expect int64) {
	var events, outOfOrder, lost, complete, errors int64
	minComments := int64(-1)
	var lastEventAt int64
	samples := []string{}
	clientsMu.Lock()
	all := clients
	clientsMu.Unlock()
	for _, c := range all {
		c.mu.Lock()
		events += c.events
		outOfOrder += c.outOfOrder
		if c.events >= expect {
			complete++
		} else {
			lost += expect - c.events
		}
		if c.err != "" {
			errors++
			if len(samples) < 3 {
				samples = append(samples, c.err)
			}
		}
		if minComments == -1 || c.comments < minComments {
			minComments = c.comments
		}
		if c.lastEventAt > lastEventAt {
			lastEventAt = c.lastEventAt
		}
		c.mu.Unlock()
	}
	if minComments == -1 {
		minComments = 0
	}
	message := map[string]interface{}{
		"type": "stats", "connections": len(all), "events": events, "outOfOrder": outOfOrder, "lost": lost,
		"complete": complete, "errors": errors, "errorSamples": samples, "minComments": minComments,
		"lastEventAt": lastEventAt, "cpuMicros": cpuMicros(),
	}
	latencyMu.Lock()
	if latencyHistogram.count > 0 {
		pairs := [][2]int64{}
		for index, count := range latencyHistogram.counts {
			if count > 0 {
				pairs = append(pairs, [2]int64{int64(index), int64(count)})
			}
		}
		message["latency"] = map[string]interface{}{"buckets": pairs, "count": latencyHistogram.count, "maxMicros": latencyHistogram.maxMicro}
	}
	latencyMu.Unlock()
	reply(message)
}

func reset() {
	clientsMu.Lock()
	all := clients
	clientsMu.Unlock()
	for _, c := range all {
		c.mu.Lock()
		c.events, c.outOfOrder, c.comments = 0, 0, 0
		c.mu.Unlock()
	}
	latencyMu.Lock()
	latencyHistogram = new(histogram)
	latencyMu.Unlock()
	reply(map[string]string{"type": "reset"})
}

func main() {
	fd, err := strconv.Atoi(os.Getenv("NODE_CHANNEL_FD"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "load worker: start me from the runner (no NODE_CHANNEL_FD)")
		os.Exit(2)
	}
	channel := os.NewFile(uintptr(fd), "ipc")
	ipcOut = channel
	lines := bufio.NewScanner(channel)
	lines.Buffer(make([]byte, 1<<20), 1<<24)
	for lines.Scan() {
		var command command
		if err := json.Unmarshal(lines.Bytes(), &command); err != nil {
			continue
		}
		switch command.Type {
		case "connect":
			go connectAll(command)
		case "stats":
			stats(command.Expect)
		case "reset":
			reset()
		case "publish":
			go func(options publishOptions) { reply(publish(options)) }(command.Options)
		case "close":
			os.Exit(0)
		}
	}
	// The runner going away (even by a crash) ends this worker too.
	os.Exit(0)
}
