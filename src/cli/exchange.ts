/**
 * The exchange commands: what a back office does with envelopes through the
 * HTTP API. `send` (send.ts) and `fetch` (fetch.ts) carry files; `inbox` and
 * `ack` are one API call each.
 */
import { UUID, json, seg, str, usageError, type Command } from './common.ts';
import { fetchCommand } from './fetch.ts';
import { sendCommand } from './send.ts';

const inboxCommand: Command = {
  args: [],
  summary: 'list the envelopes of a mailbox: its inbox, or its outbox with --out (all pages)',
  details: 'Newest first. The outbox holds drafts and sent envelopes.',
  options: {
    mailbox: { type: 'string', arg: 'ADDR', required: true, description: 'the mailbox, e.g. secretariat@uccle' },
    status: {
      type: 'string',
      arg: 'STATUS',
      description: "inbox: only this mailbox's delivered, retrieved or acknowledged envelopes; outbox: only draft or submitted ones",
    },
    type: { type: 'string', arg: 'TYPE', description: 'only envelopes of this type, e.g. general.letter' },
    out: { type: 'boolean', description: 'the outbox instead of the inbox' },
  },
  async run(ctx, values) {
    const query = new URLSearchParams({ direction: values.out ? 'out' : 'in' });
    const status = str(values, 'status');
    const type = str(values, 'type');
    if (status !== undefined) query.set('status', status);
    if (type !== undefined) query.set('type', type);
    await ctx.out(json(await ctx.api().list(`/api/v1/mailboxes/${seg(str(values, 'mailbox')!)}/envelopes?${query.toString()}`)));
  },
};

const ackCommand: Command = {
  args: ['ENVELOPE_ID'],
  summary: 'acknowledge receipt of an envelope, as its recipient',
  details: 'Prints the envelope. --mailbox is needed only when you read several of its recipient mailboxes.',
  options: {
    mailbox: { type: 'string', arg: 'ADDR', description: 'the recipient mailbox that acknowledges' },
  },
  async run(ctx, values, [id]) {
    if (!UUID.test(id!)) throw usageError(`ENVELOPE_ID must be an envelope id (a UUID), got "${id}"`, 'ack');
    const mailbox = str(values, 'mailbox');
    const body = mailbox === undefined ? {} : { mailbox };
    await ctx.out(json(await ctx.api().request('POST', `/api/v1/envelopes/${seg(id!)}/acknowledge`, body)));
  },
};

export const exchangeCommands: Record<string, Command> = {
  send: sendCommand,
  inbox: inboxCommand,
  fetch: fetchCommand,
  ack: ackCommand,
};
