// modules: the view's optional features, each in its own ES module. A module exports
// an object with:
//
//   id                   a short name
//   beforeOffer(ctx)     optional: add data channels or transceivers to ctx.pc before the
//                        WHEP offer (talk-back adds a send-only audio section)
//   mount(ctx)           render into ctx.toolbar (buttons) and ctx.panel (its own area);
//                        ctx.device, ctx.api (the box's API path), ctx.me (who is signed
//                        in and whether they may talk), ctx.t (translate), ctx.onLang,
//                        ctx.session() (this view's WHEP session), and ctx.headers to
//                        send with its own POSTs (the anti-CSRF token)
//
// A module that cannot work for this user or box simply does not render anything.
import { crew } from "./crew.js";
import { talk } from "./talk.js";

export const modules = [talk, crew];
