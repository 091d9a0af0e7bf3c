package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"mime/quotedprintable"
	"strings"
)

// A newsletter as an email service provider builds it, for measuring what
// storing real bodies costs (the filler body is one line repeated and
// compresses far better than any real mail). Written for this benchmark;
// its shape follows what such messages commonly carry:
//
//   - multipart/alternative: a text part and an HTML part, both UTF-8 in
//     quoted-printable (so every "=" of the HTML's attributes is "=3D", and
//     lines end in soft breaks at 76 characters);
//   - HTML laid out in nested tables with inline styles, as templates are
//     for mail clients that ignore style sheets;
//   - personalised per recipient: the To name and the greeting (names with
//     and without accents), a MIME boundary, the Message-ID, a tracking
//     pixel, and every link rewritten to a click-tracking URL whose token
//     encodes recipient and link (about 90 characters of base64 each, which
//     no compressor can shrink much), plus the List-Unsubscribe URL;
//   - as many products (one to four) as fit in -size: 5,000 bytes gives
//     two, 5.5 KB with the headers; four make 9.5 KB.
//
// Every copy is deterministic in the recipient's index, so two runs send
// the same bytes.

var firstNames = []string{"Anna", "Jürgen", "Zoë", "Mateo", "Søren", "Priya", "François", "Li", "Olusegun", "Małgorzata",
	"Hannah", "José", "Ingrid", "Kenji", "Éloïse", "Tomás", "Aoife", "Dmitri", "Fatima", "Björn"}
var lastNames = []string{"Schmidt", "Müller", "Okafor", "García", "Nakamura", "Dubois", "Kowalski", "Jensen", "Rossi",
	"Ó Briain", "Novák", "Andersson", "Silva", "Fernández", "Ivanova", "Brown"}

type product struct {
	name, blurb, price, was, image string
}

var products = []product{
	{"Alpine waterproof boots", "Lined with recycled wool, sealed seams, and a sole that grips on ice.", "€119.00", "€149.00", "boots-alpine"},
	{"Harbour wool coat", "A double-breasted coat in heavy melton wool, with a quilted lining.", "€189.00", "€239.00", "coat-harbour"},
	{"Everyday merino scarf", "Soft, warm and light; fifteen colours, all of them in stock.", "€29.00", "€39.00", "scarf-merino"},
	{"Trail gloves", "Touchscreen fingertips and a windproof back for cold mornings.", "€24.00", "€32.00", "gloves-trail"},
}

// token is the tracking token a provider would put in a link: opaque,
// unique to recipient and link, base64url of a keyed hash (two hashes
// long, as such tokens usually carry an encoded target as well).
func token(campaign string, i int, link string) string {
	a := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%s/a", campaign, i, link)))
	b := sha256.Sum256([]byte(fmt.Sprintf("%s/%d/%s/b", campaign, i, link)))
	return base64.RawURLEncoding.EncodeToString(append(a[:], b[:]...))
}

func clickURL(campaign string, i int, link string) string {
	return "https://click.shop.test/ls/click?upn=" + token(campaign, i, link)
}

// newsletter writes recipient i's copy, headers and body, to msg.
func newsletter(msg *bytes.Buffer, i int, rcpt, campaign string, k int) {
	first := firstNames[i%len(firstNames)]
	last := lastNames[(i/len(firstNames))%len(lastNames)]
	boundary := "=_kz_" + token(campaign, i, "boundary")[:24]
	unsub := "https://shop.test/unsubscribe/" + token(campaign, i, "unsubscribe")

	fmt.Fprintf(msg, "From: \"Shop\" <news@shop.test>\r\n"+
		"To: %s <%s>\r\n"+
		"Subject: %s\r\n"+
		"Date: Mon, 23 Nov 2026 09:00:00 +0000\r\n"+
		"Message-ID: <%s.%d.%s@mail.shop.test>\r\n"+
		"MIME-Version: 1.0\r\n"+
		"X-Kadenz-Campaign: %s\r\n"+
		"List-Unsubscribe: <%s>, <mailto:unsub+%d@shop.test>\r\n"+
		"List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"+
		"Feedback-ID: %s:winter:shop\r\n"+
		"Content-Type: multipart/alternative;\r\n boundary=\"%s\"\r\n\r\n"+
		"This is a multi-part message in MIME format.\r\n\r\n",
		encodedWord(first+" "+last), rcpt, encodedWord("Winter sale: boots and coats, 20 % off – "+first),
		campaign, i, token(campaign, i, "mid")[:16], campaign, unsub, i, campaign, boundary)

	fmt.Fprintf(msg, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary)
	qp(msg, textPart(first, campaign, i, unsub, products[:k]))
	fmt.Fprintf(msg, "\r\n--%s\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n", boundary)
	qp(msg, htmlPart(first, campaign, i, unsub, products[:k]))
	fmt.Fprintf(msg, "\r\n--%s--\r\n", boundary)
}

// encodedWord is an RFC 2047 B-encoded word when s is not ASCII.
func encodedWord(s string) string {
	for _, r := range s {
		if r >= 0x80 {
			return "=?utf-8?B?" + base64.StdEncoding.EncodeToString([]byte(s)) + "?="
		}
	}
	return s
}

func qp(msg *bytes.Buffer, s string) {
	w := quotedprintable.NewWriter(msg)
	w.Write([]byte(strings.ReplaceAll(s, "\n", "\r\n")))
	w.Close()
}

func textPart(first, campaign string, i int, unsub string, products []product) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Hello %s,\n\nwinter is here, and so is our sale: twenty percent off boots, coats and everything\n"+
		"you need for the cold months, until Sunday at midnight.\n\n", first)
	for _, p := range products {
		fmt.Fprintf(&b, "%s – %s (was %s)\n%s\n%s\n\n", p.name, p.price, p.was, p.blurb, clickURL(campaign, i, p.image))
	}
	fmt.Fprintf(&b, "Free delivery on orders over €50, and free returns for 60 days.\nShop the sale: %s\n\n"+
		"You receive this newsletter because you signed up at shop.test.\nUnsubscribe: %s\n"+
		"Shop GmbH, Hafenstraße 12, 20457 Hamburg, Germany\n", clickURL(campaign, i, "home"), unsub)
	return b.String()
}

func htmlPart(first, campaign string, i int, unsub string, products []product) string {
	var b strings.Builder
	b.WriteString(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Winter sale</title></head>
<body style="margin:0;padding:0;background-color:#f3f1ee;">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" style="background-color:#f3f1ee;">
<tr><td align="center" style="padding:24px 12px;">
<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0" style="background-color:#ffffff;border-radius:6px;">
`)
	fmt.Fprintf(&b, `<tr><td style="padding:32px 40px 8px 40px;font-family:Helvetica,Arial,sans-serif;font-size:22px;line-height:30px;color:#1d2b36;">Hello %s, winter is here.</td></tr>
<tr><td style="padding:0 40px 24px 40px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:23px;color:#4a5560;">Twenty percent off boots, coats and everything you need for the cold months, until Sunday at midnight.</td></tr>
`, first)
	for _, p := range products {
		fmt.Fprintf(&b, `<tr><td style="padding:0 40px 24px 40px;"><table role="presentation" width="100%%" cellpadding="0" cellspacing="0" border="0"><tr>
<td width="160" valign="top"><a href="%s"><img src="https://img.shop.test/w26/%s.jpg" width="160" height="160" alt="%s" style="display:block;border:0;"></a></td>
<td valign="top" style="padding-left:20px;font-family:Helvetica,Arial,sans-serif;font-size:15px;line-height:22px;color:#1d2b36;"><strong>%s</strong><br>%s<br>
<span style="color:#b3261e;font-weight:bold;">%s</span> <span style="text-decoration:line-through;color:#8a939b;">%s</span><br>
<a href="%s" style="color:#0b5cad;text-decoration:underline;">Shop now</a></td>
</tr></table></td></tr>
`, clickURL(campaign, i, p.image+"-img"), p.image, p.name, p.name, p.blurb, p.price, p.was, clickURL(campaign, i, p.image))
	}
	fmt.Fprintf(&b, `<tr><td align="center" style="padding:8px 40px 32px 40px;"><a href="%s" style="display:inline-block;background-color:#1d2b36;color:#ffffff;font-family:Helvetica,Arial,sans-serif;font-size:16px;font-weight:bold;text-decoration:none;padding:14px 28px;border-radius:4px;">Shop the sale</a></td></tr>
</table>
<table role="presentation" width="600" cellpadding="0" cellspacing="0" border="0"><tr><td style="padding:16px 40px;font-family:Helvetica,Arial,sans-serif;font-size:12px;line-height:18px;color:#8a939b;" align="center">
You receive this newsletter because you signed up at shop.test. <a href="%s" style="color:#8a939b;">Unsubscribe</a><br>
Shop GmbH, Hafenstraße 12, 20457 Hamburg, Germany</td></tr></table>
</td></tr></table>
<img src="https://click.shop.test/ls/open?upn=%s" width="1" height="1" alt="" style="display:block;border:0;">
</body></html>
`, clickURL(campaign, i, "home"), unsub, token(campaign, i, "open"))
	return b.String()
}

// productsFor is how many products keep the body (without the headers)
// within size bytes, at least one.
func productsFor(size int, campaign string) int {
	k := 1
	for n := 2; n <= len(products); n++ {
		var msg bytes.Buffer
		newsletter(&msg, 0, recipient(0), campaign, n)
		_, body, _ := bytes.Cut(msg.Bytes(), []byte("\r\n\r\n"))
		if len(body) > size {
			break
		}
		k = n
	}
	return k
}
