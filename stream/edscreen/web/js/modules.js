// modules: the view's optional features, each in its own ES module: talk-back and the
// 12-lead request come here when they exist. A module exports an object with:
//
//   id                   a short name
//   beforeOffer(ctx)     optional: add data channels or transceivers to ctx.pc before the
//                        WHEP offer (talk-back adds "control" and a send-only audio track);
//                        put channels into ctx.channels by label
//   mount(ctx)           render into ctx.toolbar (buttons) and ctx.panel (its own area);
//                        ctx.device, ctx.t (translate), ctx.channels, ctx.onLang, and
//                        ctx.headers to send with its own POSTs (the anti-CSRF token)
//
// A module that cannot work for this user or box simply does not render anything.
export const modules = [];
