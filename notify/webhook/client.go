package webhook

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Defaults of a Client.
const (
	DefaultTimeout = 10 * time.Second
	// MaxResponseBytes is how much of a receiver's answer is read (and
	// thrown away): enough to reuse the connection after a short answer,
	// never a receiver's stream held open on us.
	MaxResponseBytes = 64 << 10
)

// RefusedError: the address a host resolved to is not one webhooks may
// reach (private, loopback, link-local, ...), and no allowlist entry names
// it. Permanent: retrying the same address will not help.
type RefusedError struct {
	Host string
	IP   netip.Addr
	Why  string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("webhook: refused to connect to %s (%s): %s address; list it in AUTHLEDGER_WEBHOOK_ALLOW_HOSTS to allow it", e.Host, e.IP, e.Why)
}

// Allowlist names what webhooks may reach though it is not a public
// address (a receiver on the private network, the tests' loopback
// receiver), and the hosts registrations may name with http://.
type Allowlist struct {
	hosts    map[string]bool
	prefixes []netip.Prefix
}

// ParseAllowlist reads comma-separated host names, IP addresses and
// CIDRs. A name is matched as written in the URL (lower case): trusting a
// name trusts its DNS.
func ParseAllowlist(s string) (Allowlist, error) {
	a := Allowlist{hosts: map[string]bool{}}
	var errs []error
	for item := range strings.SplitSeq(s, ",") {
		item = strings.ToLower(strings.TrimSpace(item))
		switch {
		case item == "":
		case strings.Contains(item, "/"):
			p, err := netip.ParsePrefix(item)
			if err != nil {
				errs = append(errs, fmt.Errorf("%q is not a CIDR", item))
				continue
			}
			a.prefixes = append(a.prefixes, p.Masked())
		default:
			if ip, err := netip.ParseAddr(strings.Trim(item, "[]")); err == nil {
				a.prefixes = append(a.prefixes, netip.PrefixFrom(ip.Unmap(), ip.Unmap().BitLen()))
				continue
			}
			if strings.ContainsAny(item, " :/@") {
				errs = append(errs, fmt.Errorf("%q is neither a host name, an IP nor a CIDR", item))
				continue
			}
			a.hosts[item] = true
		}
	}
	return a, errors.Join(errs...)
}

// AllowsHost reports whether host (as in a URL: a name or an IP) is
// allowlisted by name or address: such a host may be registered with
// http:// and reached whatever it resolves to.
func (a Allowlist) AllowsHost(host string) bool {
	host = strings.ToLower(strings.Trim(host, "[]"))
	if a.hosts[host] {
		return true
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return a.allowsIP(ip)
	}
	return false
}

func (a Allowlist) allowsIP(ip netip.Addr) bool {
	ip = ip.Unmap()
	for _, p := range a.prefixes {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

// special are the ranges no webhook reaches unless allowlisted, beyond
// what netip classifies (RFC 6890's special-purpose registry, in part).
var special = []struct {
	p   netip.Prefix
	why string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "\"this network\""},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (carrier-grade NAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "IETF protocol assignment"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	// NAT64 and 6to4 embed an IPv4 address that may be private.
	{netip.MustParsePrefix("64:ff9b::/96"), "NAT64"},
	{netip.MustParsePrefix("2002::/16"), "6to4"},
}

// classify names why ip is refused, or "" for a public unicast address.
func classify(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case ip.IsLoopback():
		return "loopback"
	case ip.IsPrivate():
		return "private"
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return "link-local"
	case ip.IsUnspecified():
		return "unspecified"
	case ip.IsMulticast() || ip.IsInterfaceLocalMulticast():
		return "multicast"
	case !ip.IsGlobalUnicast():
		return "non-unicast"
	}
	for _, s := range special {
		if s.p.Contains(ip) {
			return s.why
		}
	}
	return ""
}

// ClientConfig configures a Client.
type ClientConfig struct {
	Allow Allowlist
	// Timeout bounds one delivery, connection to answer (DefaultTimeout
	// when 0).
	Timeout time.Duration
	// UserAgent is sent with every delivery.
	UserAgent string
}

// Client posts deliveries. It follows no redirect (a 3xx is a failed
// delivery: following one would reach an address nobody registered), uses
// no proxy from the environment, and checks every address it connects to
// in the dialer's Control function, after DNS resolution, so that a name
// that resolves to a public address at registration and to a private one
// later (DNS rebinding) is refused at the connection itself.
type Client struct {
	c         ClientConfig
	http      *http.Client
	userAgent string
}

// NewClient builds a Client.
func NewClient(c ClientConfig) *Client {
	if c.Timeout <= 0 {
		c.Timeout = DefaultTimeout
	}
	if c.UserAgent == "" {
		c.UserAgent = "authledger-webhooks"
	}
	cl := &Client{c: c, userAgent: c.UserAgent}
	tr := &http.Transport{
		Proxy:                 nil,
		DialContext:           cl.dial,
		ForceAttemptHTTP2:     true,
		TLSHandshakeTimeout:   c.Timeout,
		ResponseHeaderTimeout: c.Timeout,
		MaxIdleConnsPerHost:   4,
		IdleConnTimeout:       90 * time.Second,
	}
	cl.http = &http.Client{
		Transport: tr,
		Timeout:   c.Timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return cl
}

// dial connects to addr, refusing in Control every resolved address that
// is not public unless the URL's host or the address is allowlisted.
func (cl *Client) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, err
	}
	byName := cl.c.Allow.AllowsHost(host)
	d := net.Dialer{Timeout: cl.c.Timeout, Control: func(_, address string, _ syscall.RawConn) error {
		if byName {
			return nil
		}
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return fmt.Errorf("webhook: dial %s: %w", address, err)
		}
		ip := ap.Addr().Unmap()
		if cl.c.Allow.allowsIP(ip) {
			return nil
		}
		if why := classify(ip); why != "" {
			return &RefusedError{Host: host, IP: ip, Why: why}
		}
		return nil
	}}
	return d.DialContext(ctx, network, addr)
}

// Delivery is one signed request.
type Delivery struct {
	URL    string
	ID     string
	At     time.Time
	Secret Secret
	// Also are further secrets that sign the delivery beside Secret (the
	// previous one, during a rotation): one signature each, space-separated.
	Also []Secret
	Body []byte
}

// Outcome is what a delivery attempt got: the status (0 when no answer
// came) and, for anything but a 2xx, the error.
type Outcome struct {
	Status int
	Err    error
}

// Post sends d once. A 2xx answer is success; any other answer, a
// redirect, a refused address or a transport failure is an error.
func (cl *Client) Post(ctx context.Context, d Delivery) Outcome {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader(d.Body))
	if err != nil {
		return Outcome{Err: fmt.Errorf("webhook: request: %w", err)}
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("User-Agent", cl.userAgent)
	req.Header.Set(HeaderID, d.ID)
	req.Header.Set(HeaderTimestamp, strconv.FormatInt(d.At.Unix(), 10))
	sigs := []string{d.Secret.Sign(d.ID, d.At, d.Body)}
	for _, s := range d.Also {
		sigs = append(sigs, s.Sign(d.ID, d.At, d.Body))
	}
	req.Header.Set(HeaderSignature, strings.Join(sigs, " "))
	resp, err := cl.http.Do(req)
	if err != nil {
		return Outcome{Err: err}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, MaxResponseBytes))
	_ = resp.Body.Close()
	switch {
	case resp.StatusCode >= 200 && resp.StatusCode < 300:
		return Outcome{Status: resp.StatusCode}
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return Outcome{Status: resp.StatusCode, Err: fmt.Errorf("webhook: the receiver answered %d (redirects are not followed)", resp.StatusCode)}
	default:
		return Outcome{Status: resp.StatusCode, Err: fmt.Errorf("webhook: the receiver answered %d", resp.StatusCode)}
	}
}

// Refused reports whether err is an address refusal (RefusedError).
func Refused(err error) bool {
	var r *RefusedError
	return errors.As(err, &r)
}

// Close releases idle connections.
func (cl *Client) Close() { cl.http.CloseIdleConnections() }
