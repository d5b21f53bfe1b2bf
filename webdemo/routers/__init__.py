"""One router per resource: samples, training, summary, images, query.

Ids in paths use the ``id`` convertor: Starlette's ``path`` (``.*``) stops at a newline, so an image
whose file name holds one could not be reached; ``id`` matches every character.
"""

from starlette.convertors import PathConvertor, register_url_convertor


class IdConvertor(PathConvertor):
    regex = "(?s:.*)"


register_url_convertor("id", IdConvertor())
