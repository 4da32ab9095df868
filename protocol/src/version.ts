/** Agent⇄server protocol version. A server refuses a hello with another major. */
export const PROTOCOL_VERSION = 1;
