package httpapi

import (
	"bytes"
	"encoding/binary"
	"hash/fnv"
	"html/template"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/gin-gonic/gin"
)

// The pages' cache keeps the rendered middle of a page (its "content"
// template, without the layout around it) under a key naming everything
// that middle can depend on:
//
//   - the store's version (bolt.Store.Version: any committed write makes a
//     new one), read before the page reads anything, so that what is kept
//     is at least as new as its key says;
//   - the devices' live states that pages show (online, and when an offline
//     device was last seen), which live in the access engine, not the store;
//   - the minute (pages show times to the minute; the day's bookings and a
//     machine's state follow the clock);
//   - the viewer (member and role), the page's language and the whole
//     request URI (path and query).
//
// The layout, with its CSRF token and nonce, is written afresh every time.
// A page reloaded while nothing changed (a staff screen, a maker opening
// their bookings twice) is then served without reading the store again;
// the first view after a change renders in full, and that path is measured
// on its own (bench: BenchmarkPages, uncached-ratio). Only 200 answers are
// kept. A handler that shows anything else (process memory, outside
// services) must not be wrapped in cached.
type pageCache struct {
	mu      sync.Mutex
	entries map[string]cachedPage
	bytes   int
	max     int // bytes kept; the cache starts over past it; 0 turns it off
	// hits and misses count the requests served from the cache and the
	// cacheable ones rendered in full.
	hits, misses atomic.Int64
}

type cachedPage struct {
	page, title string
	html        template.HTML
}

// defaultPageCacheBytes bounds what the pages' cache keeps.
const defaultPageCacheBytes = 16 << 20

// ctxPageKey carries a cacheable request's key from cached to write.
const ctxPageKey = "fabgate.page_key"

func (p *pageCache) get(key string) (cachedPage, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	e, ok := p.entries[key]
	return e, ok
}

func (p *pageCache) put(key string, e cachedPage) {
	if p.max <= 0 || len(e.html) > p.max/4 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.entries == nil || p.bytes+len(e.html) > p.max {
		p.entries, p.bytes = map[string]cachedPage{}, 0
	}
	if old, ok := p.entries[key]; ok {
		p.bytes -= len(old.html)
	}
	p.entries[key] = e
	p.bytes += len(e.html)
}

// cached serves page handler h through the pages' cache.
func (s *Server) cached(h gin.HandlerFunc) gin.HandlerFunc {
	return func(c *gin.Context) {
		if s.pages.max <= 0 {
			h(c)
			return
		}
		key, err := s.pageKey(c)
		if err != nil {
			s.pageFail(c, err)
			return
		}
		if e, ok := s.pages.get(key); ok {
			s.pages.hits.Add(1)
			v, err := s.newView(c, e.page, "", nil)
			if err != nil {
				s.pageFail(c, err)
				return
			}
			v.Title, v.Content = e.title, e.html
			s.write(c, http.StatusOK, v)
			return
		}
		s.pages.misses.Add(1)
		c.Set(ctxPageKey, key)
		h(c)
	}
}

// pageKey names everything a cached page's content may show (see pageCache).
func (s *Server) pageKey(c *gin.Context) (string, error) {
	ctx := c.Request.Context()
	version, err := s.store.Version(ctx)
	if err != nil {
		return "", err
	}
	st, err := s.store.Settings(ctx)
	if err != nil {
		return "", err
	}
	me := member(c)
	var k bytes.Buffer
	k.Grow(96)
	k.WriteString(pageLang(c, &me, st.Language))
	k.WriteByte(0)
	k.WriteString(string(me.Role))
	k.WriteByte(0)
	k.WriteString(strconv.FormatUint(uint64(me.ID), 36))
	k.WriteByte(0)
	k.WriteString(strconv.FormatUint(version, 36))
	k.WriteByte(0)
	k.WriteString(strconv.FormatInt(s.now().Unix()/60, 36))
	k.WriteByte(0)
	k.WriteString(strconv.FormatUint(s.devicesShown(), 36))
	k.WriteByte(0)
	k.WriteString(c.Request.URL.RequestURI())
	return k.String(), nil
}

// devicesShown hashes what the pages show of the devices' live states:
// whether each is online, and when an offline one was last seen. (An
// online device's last_seen and power move with every message; no page
// shows them.)
func (s *Server) devicesShown() uint64 {
	if s.access == nil {
		return 0
	}
	states := s.access.DeviceStates()
	ids := make([]string, 0, len(states))
	for id := range states {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	h := fnv.New64a()
	var n [8]byte
	for _, id := range ids {
		st := states[id]
		h.Write([]byte(id))
		on := byte(0)
		if st.Online {
			on = 1
		}
		h.Write([]byte{0, on})
		if !st.Online && st.LastSeen != nil {
			binary.BigEndian.PutUint64(n[:], uint64(st.LastSeen.UnixNano()))
			h.Write(n[:])
		}
	}
	return h.Sum64()
}

// keepContent renders v's content alone and keeps it under the request's
// key, when the request came through cached.
func (s *Server) keepContent(c *gin.Context, v *view, t *template.Template) error {
	key := c.GetString(ctxPageKey)
	if key == "" || v.Content != "" {
		return nil
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "content", v); err != nil {
		return err
	}
	v.Content = template.HTML(buf.String())
	s.pages.put(key, cachedPage{page: v.Page, title: v.Title, html: v.Content})
	return nil
}
