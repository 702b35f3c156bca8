// Package sqlq holds the small pieces every dialect of the queue store shares: reading content in chunks,
// the chunk-by-chunk content reader, and IN-list helpers. No SQL text lives here.
package sqlq

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"sqlmta/store"
)

// ReadChunk fills buf from r. It returns the bytes read and whether r is exhausted; a short final chunk is
// not an error.
func ReadChunk(r io.Reader, buf []byte) (n int, eof bool, err error) {
	n, err = io.ReadFull(r, buf)
	switch {
	case err == nil:
		return n, false, nil
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return n, true, nil
	}
	return n, false, err
}

// FetchChunk returns chunk seq of a message; found=false when the row is gone.
type FetchChunk func(ctx context.Context, seq int) (data []byte, found bool, err error)

// ContentReader streams nchunks chunks through fetch, one query per chunk, holding nothing between reads.
type ContentReader struct {
	ctx     context.Context
	queueID string
	fetch   FetchChunk
	nchunks int
	seq     int
	buf     []byte
	closed  bool
}

// NewContentReader returns a reader over chunks 0..nchunks-1 of queueID.
func NewContentReader(ctx context.Context, queueID string, nchunks int, fetch FetchChunk) *ContentReader {
	return &ContentReader{ctx: ctx, queueID: queueID, fetch: fetch, nchunks: nchunks}
}

func (c *ContentReader) Read(p []byte) (int, error) {
	if c.closed {
		return 0, errors.New("store: read from closed content reader")
	}
	for len(c.buf) == 0 {
		if c.seq >= c.nchunks {
			return 0, io.EOF
		}
		data, found, err := c.fetch(c.ctx, c.seq)
		if err != nil {
			return 0, fmt.Errorf("store: content %s chunk %d: %w", c.queueID, c.seq, err)
		}
		if !found {
			// The message was removed while we read it (postsuper -d, or another node finished it).
			return 0, fmt.Errorf("store: content %s chunk %d: %w", c.queueID, c.seq, store.ErrNotFound)
		}
		c.buf = data
		c.seq++
	}
	n := copy(p, c.buf)
	c.buf = c.buf[n:]
	return n, nil
}

// Close releases the buffered chunk.
func (c *ContentReader) Close() error {
	c.closed = true
	c.buf = nil
	return nil
}

// Placeholders returns n "?" joined by commas, for an IN list or a VALUES row.
func Placeholders(n int) string {
	if n <= 0 {
		return ""
	}
	return strings.Repeat("?,", n-1) + "?"
}

// Batches splits ids into slices of at most size, so that an IN list stays under the server's
// placeholder limit (MySQL: 65535; SQLite: 32766).
func Batches[T any](ids []T, size int) [][]T {
	var out [][]T
	for len(ids) > size {
		out = append(out, ids[:size])
		ids = ids[size:]
	}
	if len(ids) > 0 {
		out = append(out, ids)
	}
	return out
}

// Args turns a slice into []any for database/sql.
func Args[T any](xs []T) []any {
	out := make([]any, len(xs))
	for i, x := range xs {
		out[i] = x
	}
	return out
}
